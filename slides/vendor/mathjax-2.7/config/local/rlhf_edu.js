/* rlhf-edu: this trimmed MathJax 2.7.9 (from jupyter-server-mathjax) ships only the STIX-Web
   web fonts, so tell the HTML-CSS output to use them instead of the (absent) TeX fonts. */
MathJax.Hub.Config({
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}
});
MathJax.Ajax.loadComplete("[MathJax]/config/local/rlhf_edu.js");
