// Small DOM helpers shared by the views. Text from models (layer and class names) only ever goes in through
// textContent, option text and attributes: never through innerHTML.

/** createElement with properties and children; "class", "text" (textContent) and data-/aria-/role attributes. */
export function h(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (/^(data-|aria-|role$)/.test(key)) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

/** Replace the options of a select with [value, text] pairs. */
export function setOptions(select, pairs) {
  select.replaceChildren(...pairs.map(([value, text]) => h("option", { value, text })));
}
