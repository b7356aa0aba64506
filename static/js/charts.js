/* Draws every chart of templates/_chart.html with the vendored Chart.js (static/vendor/chartjs/).
   The data is the JSON that fusion_site.charts builds, read from the figure's json_script element: a title,
   x and y axes titled with their units, labels, and series of values with the text the page's table shows
   for each (tooltips say exactly what the table says). Colours come from site.css (--series-N, --chart-up,
   --chart-down). No animation when the reader prefers reduced motion. Nothing here writes markup styles:
   Chart.js sizes the canvas through the CSSOM, which the Content-Security-Policy allows. */
(function () {
  "use strict";

  var MONEY = "\u00a3";

  function cssColour(name, fallback) {
    var value = window.getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function seriesColour(index) {
    return cssColour("--series-" + (index % 6), "#0b5cad");
  }

  function tick(unit, value) {
    var number = Number(value);
    var text = Math.abs(number).toLocaleString("en-GB", { maximumFractionDigits: 2 });
    var sign = number < 0 ? "-" : "";
    return unit === MONEY ? sign + MONEY + text : sign + text;
  }

  function datasets(spec) {
    var up = cssColour("--chart-up", "#c0392b");
    var down = cssColour("--chart-down", "#2e7d32");
    return spec.series.map(function (series, index) {
      var values = series.values.map(Number);
      var colour = spec.signed
        ? values.map(function (value) { return value < 0 ? down : up; })
        : seriesColour(index);
      return {
        label: series.label,
        data: values,
        texts: series.texts,
        backgroundColor: colour,
        borderColor: colour,
        borderWidth: 0,
        maxBarThickness: 64 // one customer's bar is a bar, not the whole width
      };
    });
  }

  function legendLabels(spec) {
    if (!spec.signed) {
      return undefined; // Chart.js' own: one entry per series
    }
    // One series coloured by sign: the legend names both colours.
    return function () {
      var label = spec.series[0].label;
      return [
        { text: label + ": up", fillStyle: cssColour("--chart-up", "#c0392b"), strokeStyle: "transparent", lineWidth: 0, datasetIndex: 0 },
        { text: label + ": down", fillStyle: cssColour("--chart-down", "#2e7d32"), strokeStyle: "transparent", lineWidth: 0, datasetIndex: 0 }
      ];
    };
  }

  function config(spec) {
    var reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    var counts = spec.y.unit !== MONEY;
    return {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets(spec) },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: reduced ? false : { duration: 300 },
        interaction: { mode: "nearest", intersect: true },
        scales: {
          x: {
            stacked: spec.stacked,
            title: { display: true, text: spec.x.label }
          },
          y: {
            stacked: spec.stacked,
            beginAtZero: true,
            title: { display: true, text: spec.y.label },
            ticks: {
              precision: counts ? 0 : undefined,
              callback: function (value) { return tick(spec.y.unit, value); }
            }
          }
        },
        plugins: {
          title: { display: true, text: spec.title },
          legend: { display: true, position: "bottom", labels: { generateLabels: legendLabels(spec) } },
          tooltip: {
            callbacks: {
              label: function (context) {
                return context.dataset.label + ": " + context.dataset.texts[context.dataIndex];
              }
            }
          }
        }
      }
    };
  }

  function draw(figure) {
    if (figure.dataset.chartDrawn === "yes") {
      return;
    }
    var canvas = figure.querySelector("canvas");
    var source = document.getElementById(figure.dataset.chartData);
    if (!canvas || !source) {
      return;
    }
    var settings = config(JSON.parse(source.textContent));
    if (!settings.options.plugins.legend.labels.generateLabels) {
      delete settings.options.plugins.legend.labels.generateLabels;
    }
    new window.Chart(canvas, settings);
    figure.dataset.chartDrawn = "yes";
  }

  function drawAll() {
    if (!window.Chart) {
      return; // the library did not load: the table and the text alternative still give the values
    }
    var ink = cssColour("--ink", "#1d2733");
    window.Chart.defaults.color = ink;
    window.Chart.defaults.font.family = "system-ui, sans-serif";
    Array.prototype.forEach.call(document.querySelectorAll("figure.chart[data-chart-data]"), draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
