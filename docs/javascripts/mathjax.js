// MathJax 3 settings for the math that pymdownx.arithmatex (generic mode) wraps in
// elements of class "arithmatex": only those are typeset, with \( \) inline and \[ \]
// display delimiters. Material's instant navigation replaces the page body without a
// reload, so each new page is typeset again.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

if (typeof document$ !== "undefined") {
  document$.subscribe(function () {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
