/**
 * The chart library's types for `import uPlot from "./uplot.js"`: the
 * ingress serves uPlot's own ES module build (node_modules/uplot/dist/
 * uPlot.esm.js) under that name next to these modules, so the browser loads
 * it with no bundler and no CDN.
 */
import uPlot from "uplot";
export default uPlot;
