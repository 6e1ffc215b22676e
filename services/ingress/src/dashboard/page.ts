/**
 * The dashboard's HTML shell: everything it draws comes from the ES module.
 * Asset URLs carry a version (a hash of every asset), so they are cached for
 * good; the shell itself is revalidated by ETag on each visit.
 */
export function dashboardPage(assetBase: string, modules: readonly string[]): string {
  const preload = modules.map((m) => `<link rel="modulepreload" href="${assetBase}/${m}">`).join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Longhaul</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${assetBase}/uplot.css">
<link rel="stylesheet" href="${assetBase}/app.css">
${preload}
<script type="module" src="${assetBase}/main.js"></script>
</head>
<body>
<div id="app"><noscript>The Longhaul dashboard needs JavaScript.</noscript></div>
</body>
</html>
`;
}
