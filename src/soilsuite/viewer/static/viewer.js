// soilsuite viewer: layer list, legend, opacity, click for values and the PV+IR2 series.
(function () {
  "use strict";
  var map = L.map("map", { zoomControl: true, attributionControl: true });
  var state = { layers: [], byId: {}, active: null, tile: null, opacity: 0.9, basemap: null, series: false, style: "",
                band: 1, lastPoint: null, marker: null };
  window.soilsuiteViewer = state;
  state.map = map;

  function fmt(v) {
    if (v === null || v === undefined) return "nodata";
    var a = Math.abs(v);
    if (a >= 1e6) return v.toExponential(3);
    if (a !== 0 && a < 0.01) return v.toPrecision(3);
    return String(Math.round(v * 10000) / 10000);
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; });
  }

  // multi-band layers drawn one band at a time (PROVENANCE, BSF_MONTHLY, ...): a band menu
  function bandMenu(layer) {
    if (!layer.band_legends) return "";
    var h = "<div class='row'><label for='band'>band</label><select id='band'>";
    layer.bands.forEach(function (b, i) {
      h += "<option value='" + (i + 1) + "'" + (i + 1 === state.band ? " selected" : "") + ">" + esc(b) + "</option>";
    });
    return h + "</select></div>";
  }

  function legendHtml(layer) {
    var lg = layer.band_legends ? layer.band_legends[state.band - 1] : layer.legend;
    var h = "<b>" + esc(layer.name) + "</b>";
    var alt = state.style && layer.styles[state.style];
    if (layer.group !== "window") h += " (" + esc(layer.group) + ")";
    h += "<div class='note'>" + esc(layer.description) + "</div>";
    h += bandMenu(layer);
    if (lg.type === "constant") {
      h += "<div class='constant'><span class='swatch' style='background:" + lg.color + "'></span>constant value " +
        fmt(lg.value) + " " + esc(lg.unit) + "</div>";
    } else if (lg.type === "classes") {
      lg.items.forEach(function (it) {
        h += "<div><span class='swatch' style='background:" + it.color + "'></span>" + it.value + ": " + esc(it.label) + "</div>";
      });
    } else {
      var colors = lg.type === "rgb" ? ["#000", "#fff"] : lg.colors;
      var lo = alt ? alt.vmin : lg.min, hi = alt ? alt.vmax : lg.max;
      h += "<div class='bar' style='background:linear-gradient(to right," + colors.join(",") + ")'></div>";
      h += "<div class='ends'><span>" + fmt(lo) + "</span><span>" + esc(lg.unit) + "</span><span>" + fmt(hi) + "</span></div>";
      if (lg.type === "rgb") {
        h += "<div class='row'><label for='style'>bands</label><select id='style'>" +
          "<option value=''>true colour (B04/B03/B02)</option>";
        Object.keys(layer.styles).forEach(function (k) {
          h += "<option value='" + esc(k) + "'" + (k === state.style ? " selected" : "") + ">" + esc(layer.styles[k].label) + "</option>";
        });
        h += "</select></div>";
      }
    }
    h += "<div class='note'>" + esc(alt ? "transparent: nodata" : lg.note) + "</div>";
    return h;
  }

  function showLayer(id) {
    var layer = state.byId[id];
    if (!layer) return;
    if (state.tile) map.removeLayer(state.tile);
    var b = layer.bounds;
    if (!(state.style && layer.styles && layer.styles[state.style])) state.style = "";
    // keep the band by name when switching between layers of the same bands (2021/PROVENANCE ...)
    var bandName = state.bandName && layer.band_legends ? layer.bands.indexOf(state.bandName) : -1;
    state.band = layer.band_legends ? (bandName >= 0 ? bandName + 1 : Math.min(state.band, layer.bands.length)) : 1;
    state.bandName = layer.band_legends ? layer.bands[state.band - 1] : state.bandName;
    var style = state.style ? "&style=" + encodeURIComponent(state.style) : "";
    if (layer.band_legends) style += "&band=" + state.band;
    state.tile = L.tileLayer("/tiles/{z}/{x}/{y}.png?layer=" + encodeURIComponent(id) + style, {
      opacity: state.opacity, maxZoom: 22, maxNativeZoom: 22, tileSize: 256,
      bounds: L.latLngBounds([b[1], b[0]], [b[3], b[2]]), attribution: "soilsuite"
    }).addTo(map);
    state.active = id;
    document.getElementById("legend").innerHTML = legendHtml(layer);
    var sel = document.getElementById("style");
    if (sel) sel.addEventListener("change", function (e) { state.style = e.target.value; showLayer(state.active); });
    var bsel = document.getElementById("band");
    if (bsel) bsel.addEventListener("change", function (e) {
      state.band = parseInt(e.target.value, 10);
      state.bandName = layer.bands[state.band - 1];
      showLayer(state.active);
    });
    var radio = document.querySelector("input[name=layer][value='" + CSS.escape(id) + "']");
    if (radio) radio.checked = true;
  }
  state.showLayer = showLayer;

  function buildList(layers) {
    var box = document.getElementById("layers"), groups = {};
    layers.forEach(function (l) {
      if (!groups[l.group]) {
        var g = document.createElement("div");
        g.className = "group";
        g.innerHTML = "<h2>" + (l.group === "window" ? "whole window" : esc(l.group)) + "</h2>";
        box.appendChild(g);
        groups[l.group] = g;
      }
      var lab = document.createElement("label");
      lab.className = "layer";
      lab.dataset.id = l.id;
      lab.title = l.description;
      lab.innerHTML = "<input type='radio' name='layer' value='" + esc(l.id) + "'> " + esc(l.name) +
        " <span class='unit'>" + esc(l.unit) + "</span>";
      lab.querySelector("input").addEventListener("change", function () { showLayer(l.id); });
      groups[l.group].appendChild(lab);
    });
  }

  function showValues(lat, lng) {
    state.lastPoint = null;
    var info = document.getElementById("info"), body = document.getElementById("info-body");
    if (state.marker) map.removeLayer(state.marker);
    state.marker = L.circleMarker([lat, lng], { radius: 5, color: "#000", weight: 1, fillColor: "#ff0", fillOpacity: 1 }).addTo(map);
    body.innerHTML = "reading values ...";
    info.hidden = false;
    fetch("/api/point?lon=" + lng + "&lat=" + lat).then(function (r) { return r.json(); }).then(function (p) {
      var h = "<div><b>" + lat.toFixed(6) + " N, " + lng.toFixed(6) + " E</b></div>";
      if (state.series) {
        h += "<div id='series'><img alt='PV+IR2 time series of the pixel' src='/api/series?format=png&lon=" + lng + "&lat=" + lat + "'></div>";
      } else if (state.seriesNote) {
        h += "<div class='note'>No time series: " + esc(state.seriesNote) + ".</div>";
      }
      h += "<table id='values'>" +
        "<tr><th>layer</th><th>value</th><th>unit</th></tr>";
      p.layers.forEach(function (v) {
        var val;
        if (!v.inside) val = "outside";
        else {
          var keys = Object.keys(v.values);
          var none = keys.every(function (k) { return v.values[k] === null; });
          val = keys.length === 1 || none ? fmt(v.values[keys[0]]) :
            keys.map(function (k) { return k + " " + fmt(v.values[k]); }).join(", ");
          if (v.label) val += " (" + esc(v.label) + ")";
        }
        h += "<tr data-id='" + esc(v.id) + "'><td>" + esc(v.id) + "</td><td>" + val + "</td><td>" + esc(v.unit) + "</td></tr>";
      });
      h += "</table>";
      body.innerHTML = h;
      state.lastPoint = p;
    });
  }
  state.showValues = showValues;

  document.getElementById("info-close").addEventListener("click", function () {
    document.getElementById("info").hidden = true;
  });
  document.getElementById("opacity").addEventListener("input", function (e) {
    state.opacity = parseFloat(e.target.value);
    document.getElementById("opacity-value").textContent = state.opacity.toFixed(2);
    if (state.tile) state.tile.setOpacity(state.opacity);
  });
  document.getElementById("basemap").addEventListener("change", function (e) {
    if (e.target.checked) {
      state.basemap = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
        maxZoom: 19, attribution: "&copy; OpenStreetMap contributors" }).addTo(map);
      state.basemap.bringToBack();
    } else if (state.basemap) {
      map.removeLayer(state.basemap);
      state.basemap = null;
    }
  });
  map.on("click", function (e) { showValues(e.latlng.lat, e.latlng.lng); });

  fetch("/api/layers").then(function (r) { return r.json(); }).then(function (d) {
    state.layers = d.layers;
    state.series = d.series;
    state.seriesNote = d.series_note;
    d.layers.forEach(function (l) { state.byId[l.id] = l; });
    var b = d.bounds;
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
    buildList(d.layers);
    var first = d.layers.find(function (l) { return l.name === "SRC_MEAN"; }) || d.layers[0];
    if (first) showLayer(first.id);
    state.ready = true;
    document.body.dataset.ready = "1";
  });
})();
