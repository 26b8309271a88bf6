"""An SVG download next to plotly's PNG camera, for figures in papers, with no server round trip.

Plotly's modebar offers one image format per chart (`toImageButtonOptions.format`), and a custom
modebar button needs a JavaScript click function, which Streamlit cannot pass: it sends the chart's
config as JSON. So this script, run once in the page, adds a "Download plot as SVG" button beside
every chart's camera; its click switches that chart's format to SVG for one press of the camera and
switches it back. The SVG is plotly.js's own export (`Plotly.downloadImage`), made in the browser.
The style hides the script's own (empty) element, so it adds no gap under the chart.
"""

from __future__ import annotations

SVG_BUTTON_TITLE = "Download plot as SVG"

SVG_BUTTON_SCRIPT = """<style>[data-testid=stElementContainer]:has(script[data-bertlab-svg-script]) {display: none}</style>
<script data-bertlab-svg-script>
(function () {
  if (window.bertlabSvgButtons) return;  // one observer per page, however many charts ask for it
  window.bertlabSvgButtons = true;
  var NS = 'http://www.w3.org/2000/svg';
  function icon() {  // built with DOM calls: Streamlit's sanitizer drops a script whose text holds markup
    var svg = document.createElementNS(NS, 'svg'), text = document.createElementNS(NS, 'text');
    svg.setAttribute('viewBox', '0 0 30 16');
    svg.setAttribute('width', '1.9em');
    svg.setAttribute('height', '1em');
    svg.setAttribute('class', 'icon');
    text.setAttribute('x', '1');
    text.setAttribute('y', '13');
    text.setAttribute('style', 'font: 700 12px sans-serif; fill: rgba(68, 68, 68, 0.6)');
    text.textContent = 'SVG';
    svg.appendChild(text);
    return svg;
  }
  function decorate() {
    document.querySelectorAll('.js-plotly-plot').forEach(function (gd) {
      var camera = gd.querySelector('.modebar-btn[data-title^="Download plot"]:not([data-bertlab-svg])');
      if (!camera || camera.parentNode.querySelector('[data-bertlab-svg]')) return;
      var button = document.createElement(camera.tagName);  // plotly's own kind of modebar button
      button.className = 'modebar-btn';
      if (camera.tagName === 'BUTTON') button.type = 'button';
      button.setAttribute('rel', 'tooltip');
      button.setAttribute('data-gravity', 'n');
      button.setAttribute('data-title', 'TITLE');
      button.setAttribute('aria-label', 'TITLE');
      button.setAttribute('data-bertlab-svg', '');
      button.appendChild(icon());
      button.addEventListener('click', function () {
        var options = gd._context && gd._context.toImageButtonOptions;
        if (!options) return;
        var format = options.format;
        options.format = 'svg';  // plotly reads it when the camera is pressed, synchronously
        try { camera.click(); } finally { options.format = format; }
      });
      camera.parentNode.insertBefore(button, camera.nextSibling);
    });
  }
  var queued = false;
  new MutationObserver(function () {  // plotly rebuilds a modebar when a chart redraws
    if (queued) return;
    queued = true;
    requestAnimationFrame(function () { queued = false; decorate(); });
  }).observe(document.body, {childList: true, subtree: true});
  decorate();
})();
</script>""".replace("TITLE", SVG_BUTTON_TITLE)
