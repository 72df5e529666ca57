// Colour maps as 256-entry RGB tables, built from evenly spaced control points by linear interpolation.
// viridis and magma: 33 samples of matplotlib's tables (CC0), within 2/255 of the originals.
// coolwarm: Kenneth Moreland's diverging map ("Diverging Color Maps for Scientific Visualization"), 17 points.
const ANCHORS = {
  viridis:
    "440154 470d60 48186a 482374 472d7b 453781 424086 3e4989 3b528b 375b8d 33638d 2f6b8e 2c728e 297a8e 26828e " +
    "23898e 21908c 1f978b 1f9f88 21a685 27ad81 31b57b 3ebc74 4dc26c 5cc863 6ece58 82d34d 95d840 aadc32 c0df25 " +
    "d5e21a eae51a fde725",
  magma:
    "000004 030312 0a0822 130d34 1d1147 29115a 36106b 440f76 50127c 5d177f 691c81 762181 822681 8f2a81 9c2e7f " +
    "a9337d b6367a c33b75 cf4070 db476a e65164 ee5c5e f46a5c f9785d fb8861 fd9668 fea571 feb47b fec287 fed194 " +
    "fde0a1 fceeb0 fcfdbf",
  gray: "000000 ffffff",
  coolwarm:
    "3b4cc0 4d68d7 6282ea 779af7 8db0fe a3c2ff b8d0f9 ccd9ee dddddd ecd3c5 f5c4ad f7b194 f49a7b ec7f63 de604d " +
    "cb3e38 b40426",
};

/** The names `colormap` accepts. */
export const COLORMAPS = Object.freeze(Object.keys(ANCHORS));

/** "rrggbb" → [r, g, b]. */
function parseHex(hex) {
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

/** A fresh Uint8Array(256 * 3) of RGB triples for `name`; entry i is the colour of index i. */
export function colormap(name) {
  if (!Object.hasOwn(ANCHORS, name)) {
    throw new Error(`unknown colour map ${JSON.stringify(name)}; expected one of ${COLORMAPS.join(", ")}`);
  }
  const stops = ANCHORS[name].split(" ").map(parseHex);
  const last = stops.length - 1;
  const table = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * last;
    const k = Math.min(Math.floor(x), last - 1);
    const f = x - k;
    for (let c = 0; c < 3; c++) {
      table[i * 3 + c] = Math.round(stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f);
    }
  }
  return table;
}
