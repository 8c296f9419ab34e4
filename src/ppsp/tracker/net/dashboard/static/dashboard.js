// The tracker's dashboard: plain JavaScript, no framework, nothing fetched from elsewhere.
//
// Two views, chosen by the URL's fragment: the overview (#/ or #/?page=N) and a swarm's page
// (#/swarms/ID).  Each reads the tracker's JSON API (/api/swarms, /api/swarms/ID) and is read
// again every 10 seconds while the tab is visible.  Everything a peer or a swarm says of
// itself is put in the page as text (textContent), never as markup.  When the tracker asks for
// a token (401 or 403), the page asks for an operator token once and keeps it in this tab's
// sessionStorage, sending it as "Authorization: Bearer" with every request.
"use strict";

(() => {
  const TOKEN_KEY = "ppsp-operator-token";
  const REFRESH_MS = 10000;
  const SVG_NS = "http://www.w3.org/2000/svg";

  const main = document.getElementById("main");
  const state = document.getElementById("state");
  const tokenPanel = document.getElementById("token-panel");
  const tokenForm = document.getElementById("token-form");
  const tokenInput = document.getElementById("token-input");
  const tokenError = document.getElementById("token-error");
  const forget = document.getElementById("forget-token");
  const software = document.getElementById("software");

  let timer = null;
  let shown = 0; // incremented at each rendering: stale answers are dropped

  // -- building the page --------------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    return node;
  }

  // -- figures as text ----------------------------------------------------------------------

  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

  function bytes(value) {
    if (value === null || value === undefined) return "–";
    let amount = Number(value);
    let unit = 0;
    while (amount >= 1024 && unit < UNITS.length - 1) {
      amount /= 1024;
      unit += 1;
    }
    return (unit === 0 ? String(Math.round(amount)) : amount.toFixed(amount < 10 ? 2 : 1)) + " " + UNITS[unit];
  }

  function rate(value) {
    return value === null || value === undefined ? "–" : bytes(value) + "/s";
  }

  function count(value) {
    return value === null || value === undefined ? "–" : Number(value).toLocaleString("en");
  }

  function percent(value, digits) {
    return value === null || value === undefined ? "–" : (value * 100).toFixed(digits === undefined ? 1 : digits) + " %";
  }

  function seconds(value) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(2) + " s";
  }

  function last(series) {
    if (!series) return null;
    for (let i = series.length - 1; i >= 0; i -= 1) {
      if (series[i] !== null && series[i] !== undefined) return series[i];
    }
    return null;
  }

  // -- the API ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    let response;
    try {
      response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
    } catch (error) {
      throw new ApiError(0, "the tracker does not answer");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.error === "string" ? body.error : "HTTP " + response.status;
      throw new ApiError(response.status, message);
    }
    return body;
  }

  // -- charts -------------------------------------------------------------------------------

  // The smallest "round" step at least `value` (1, 2, 2.5 or 5 times a power of ten; whole
  // numbers only for counts).
  function niceStep(value, whole) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of whole ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) return whole ? Math.max(1, Math.ceil(step * power)) : step * power;
    }
    return 10 * power;
  }

  // A line chart of the history: `history.t` (seconds before now, negative) against each
  // series of `lines` ({key, label, style}); `format` writes a value of the y axis, whose top
  // is at least `least` (counts: 4; rates: 1000 B/s); `whole`: ticks at whole numbers.  The
  // time axis covers the samples there are: the last 10 minutes at first, up to the span.
  function chart(title, history, lines, format, least, whole) {
    const width = 600;
    const height = 170;
    const left = 76;
    const right = 10;
    const top = 10;
    const bottom = 22;
    const times = (history && history.t) || [];
    const kept = (history && history.span) || 3600;
    const span = Math.min(kept, Math.max(600, Math.ceil((times.length ? -times[0] : 0) / 600) * 600));
    const figure = el("figure", { class: "chart", "data-chart": title });
    figure.append(el("figcaption", { text: title }));
    const legend = el("div", { class: "legend" });
    lines.forEach((line, i) => {
      legend.append(el("span", {}, el("span", { class: "swatch s" + (line.style === undefined ? i : line.style) }), line.label));
    });
    figure.append(legend);
    const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
    let top_value = 0;
    for (const line of lines) {
      for (const value of (history && history[line.key]) || []) {
        if (value !== null && value > top_value) top_value = value;
      }
    }
    const ymax = 4 * niceStep(Math.max(top_value, least || 0) / 4, whole);
    const x = (t) => left + ((t + span) / span) * (width - left - right);
    const y = (v) => top + (1 - v / ymax) * (height - top - bottom);
    for (let i = 0; i <= 4; i += 1) {
      const value = (ymax * i) / 4;
      plot.append(svg("line", { class: "grid", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
      const label = svg("text", { class: "axis", x: left - 6, y: y(value) + 3, "text-anchor": "end" });
      label.textContent = format(value);
      plot.append(label);
    }
    for (const [t, text] of [[-span, "−" + Math.round(span / 60) + " min"], [-span / 2, "−" + Math.round(span / 120) + " min"], [0, "now"]]) {
      const label = svg("text", { class: "axis", x: x(t), y: height - 6, "text-anchor": t === 0 ? "end" : t === -span ? "start" : "middle" });
      label.textContent = text;
      plot.append(label);
    }
    if (times.length === 0) {
      const empty = svg("text", { class: "empty", x: (left + width) / 2, y: height / 2, "text-anchor": "middle" });
      empty.textContent = "no samples yet: one every " + ((history && history.interval) || 10) + " s";
      plot.append(empty);
    }
    lines.forEach((line, i) => {
      const values = (history && history[line.key]) || [];
      const style = "s" + (line.style === undefined ? i : line.style);
      let d = "";
      let drawing = false;
      let end = null;
      for (let k = 0; k < times.length; k += 1) {
        const value = values[k];
        if (value === null || value === undefined) {
          drawing = false;
          continue;
        }
        d += (drawing ? " L" : " M") + x(times[k]).toFixed(1) + " " + y(value).toFixed(1);
        drawing = true;
        end = [x(times[k]), y(value)];
      }
      if (d) plot.append(svg("path", { class: "line " + style, d: d.trim() }));
      // The latest sample as a dot: a series of one sample (or after a gap) shows too.
      if (end) plot.append(svg("circle", { class: "dot " + style, cx: end[0].toFixed(1), cy: end[1].toFixed(1), r: 2.5 }));
    });
    figure.append(plot);
    return figure;
  }

  // -- pieces of the views ------------------------------------------------------------------

  function card(label, value, sub) {
    return el("div", { class: "card" }, el("div", { class: "label", text: label }), el("div", { class: "value", text: value }), sub ? el("div", { class: "sub", text: sub }) : null);
  }

  function badge(kind) {
    return el("span", { class: "badge " + kind, "data-kind": kind, text: kind });
  }

  function cell(field, text, numeric) {
    return el("td", { "data-field": field, class: numeric ? "num" : null, text });
  }

  function swarmLink(id) {
    return el("a", { href: "#/swarms/" + encodeURIComponent(id), class: "mono", text: id });
  }

  function qoeCards(qoe) {
    if (!qoe) return [];
    return [
      card("Live viewers", count(qoe.viewers), "reporting playback"),
      card("Continuity", percent(qoe.continuity_mean), "worst viewer " + percent(qoe.continuity_min)),
      card("Startup delay", seconds(qoe.startup_delay_mean), "mean"),
      card("Delay behind source", seconds(qoe.delay_mean), "worst " + seconds(qoe.delay_max)),
      card("From peers", percent(qoe.peer_share), bytes(qoe.bytes_from_peers) + " of " + bytes(qoe.bytes_from_peers + qoe.bytes_from_source)),
    ];
  }

  // -- the overview -------------------------------------------------------------------------

  function overview(data, page) {
    const view = el("div", { "data-view": "overview" });
    const totals = data.totals;
    const history = data.history;
    view.append(el("h2", { text: "Tracker" }));
    view.append(
      el(
        "div",
        { class: "cards" },
        card("Peers", count(totals.peers), "registered"),
        card("Swarms", count(totals.swarms), "with members"),
        card("Memberships", count(totals.memberships), "peers in swarms"),
        card("Upload reported", rate(last(history.up_rate)), "swarms followed: " + history.followed),
        card("Download reported", rate(last(history.down_rate)), "the last 10 s"),
        totals.suspects || totals.reported ? card("Suspect peers", count(totals.suspects), count(totals.reported) + " reported for corrupt data") : null,
      ),
    );
    view.append(
      el(
        "div",
        { class: "charts" },
        chart("Peers", history, [{ key: "peers", label: "registered peers" }, { key: "memberships", label: "memberships", style: 1 }], count, 4, true),
        chart("Swarms", history, [{ key: "swarms", label: "swarms" }], count, 4, true),
        chart("Traffic reported", history, [{ key: "up_rate", label: "upload", style: 2 }, { key: "down_rate", label: "download", style: 3 }], rate, 1000),
      ),
    );
    view.append(el("h2", { text: "Swarms" }));
    if (data.swarms.length === 0) {
      view.append(el("p", { class: "muted", text: data.total ? "No swarm on this page." : "No swarm yet." }));
    } else {
      const head = el("tr", {}, ...["Swarm", "Kind", "Seeders", "Leechers", "Download", "Downloaded", "Uploaded", "Viewers", "Continuity", "Delay", "From peers"].map((name, i) => el("th", { class: i >= 2 && name !== "Kind" ? "num" : null, text: name })));
      const body = el("tbody");
      for (const swarm of data.swarms) {
        const qoe = swarm.qoe;
        body.append(
          el(
            "tr",
            { "data-swarm-id": swarm.id },
            el("td", { class: "id", "data-field": "id" }, swarmLink(swarm.id)),
            el("td", { "data-field": "kind" }, badge(swarm.kind)),
            cell("seeders", count(swarm.seeders), true),
            cell("leechers", count(swarm.leechers), true),
            cell("down_rate", rate(swarm.down_rate), true),
            cell("downloaded", bytes(swarm.downloaded_bytes), true),
            cell("uploaded", bytes(swarm.uploaded_bytes), true),
            cell("viewers", qoe ? count(qoe.viewers) : "–", true),
            cell("continuity", qoe ? percent(qoe.continuity_mean) : "–", true),
            cell("delay", qoe ? seconds(qoe.delay_mean) : "–", true),
            cell("peer_share", qoe ? percent(qoe.peer_share) : "–", true),
          ),
        );
      }
      view.append(el("table", { id: "swarm-table" }, el("thead", {}, head), body));
      if (data.swarms.some((swarm) => swarm.sampled)) {
        view.append(el("p", { class: "note", text: "Figures of swarms with more than 200 members are scaled from a random sample of them." }));
      }
    }
    const pager = el("div", { class: "pager" });
    if (page > 1) pager.append(el("a", { href: "#/?page=" + (page - 1), text: "← previous" }));
    pager.append(el("span", { class: "muted", text: `page ${page} of ${data.pages} (${count(data.total)} swarms)` }));
    if (page < data.pages) pager.append(el("a", { href: "#/?page=" + (page + 1), text: "next →" }));
    view.append(pager);
    return view;
  }

  // -- a swarm ------------------------------------------------------------------------------

  function swarmPage(data) {
    const view = el("div", { "data-view": "swarm", "data-swarm-id": data.id });
    view.append(el("p", {}, el("a", { href: "#/", text: "← all swarms" })));
    view.append(el("h2", {}, el("span", { class: "mono", id: "swarm-id", text: data.id }), badge(data.kind)));
    view.append(
      el(
        "div",
        { class: "cards" },
        card("Members", count(data.members), data.sampled ? data.read + " read (a random sample)" : "all read"),
        card("Seeders", count(data.seeders)),
        card("Leechers", count(data.leechers)),
        card("Downloaded", bytes(data.downloaded_bytes), "download " + rate(data.down_rate)),
        card("Uploaded", bytes(data.uploaded_bytes), "upload " + rate(data.up_rate)),
        ...qoeCards(data.qoe),
      ),
    );
    const history = data.history;
    if (history) {
      const charts = el(
        "div",
        { class: "charts" },
        chart("Peers", history, [{ key: "seeders", label: "seeders", style: 1 }, { key: "leechers", label: "leechers", style: 3 }], count, 4, true),
        chart("Traffic reported", history, [{ key: "up_rate", label: "upload", style: 2 }, { key: "down_rate", label: "download", style: 3 }], rate, 1000),
      );
      if (data.kind === "live") {
        charts.append(chart("Continuity", history, [{ key: "continuity", label: "mean continuity of the viewers", style: 4 }], (v) => percent(v, 0), 1));
      }
      view.append(charts);
    } else {
      view.append(el("p", { class: "note", text: "The tracker keeps the history of 100 swarms; this one is not among them yet." }));
    }
    view.append(el("h2", { text: "Peers" }));
    view.append(
      el("p", { class: "note", text: data.addresses === "masked" ? "Addresses are masked (the network only); the tracker's --dashboard-addresses full shows them whole." : "Addresses are shown whole." }),
    );
    const head = el("tr", {}, ...["PeerID", "Mode", "Addresses", "Coverage", "Downloaded", "Uploaded", "Links", "Continuity", "Delay"].map((name, i) => el("th", { class: i >= 4 ? "num" : null, text: name })));
    const body = el("tbody");
    for (const peer of data.peers) {
      const coverage = el("td", { "data-field": "coverage" });
      if (peer.coverage === null) {
        coverage.textContent = "–";
      } else {
        const bar = el("span", { class: "bar" }, el("span"));
        bar.firstChild.style.width = (peer.coverage * 100).toFixed(1) + "%"; // CSSOM, not markup
        coverage.append(bar, percent(peer.coverage), el("span", { class: "muted", text: ` (${count(peer.held)} of ${count(peer.described)})` }));
      }
      const qoe = peer.qoe;
      body.append(
        el(
          "tr",
          { "data-peer-id": peer.peer_id },
          el("td", { class: "id mono", "data-field": "peer_id", text: peer.peer_id }),
          el("td", { "data-field": "mode" }, el("span", { class: "badge " + (peer.mode === "SEED" ? "seed" : "leech"), text: peer.mode.toLowerCase() })),
          el("td", { class: "mono", "data-field": "addresses", text: peer.addresses.join(", ") }),
          coverage,
          cell("downloaded", bytes(peer.downloaded_bytes), true),
          cell("uploaded", bytes(peer.uploaded_bytes), true),
          cell("links", count(peer.links), true),
          cell("continuity", qoe ? percent(qoe.continuity) : "–", true),
          cell("delay", qoe ? seconds(qoe.delay_behind_source) : "–", true),
        ),
      );
    }
    view.append(el("table", { id: "peer-table" }, el("thead", {}, head), body));
    if (data.sampled) {
      view.append(el("p", { class: "note", text: `${data.read} peers of ${count(data.members)} shown: a random sample.` }));
    }
    return view;
  }

  // -- routing and refreshing ---------------------------------------------------------------

  function where() {
    const hash = location.hash || "#/";
    if (hash.startsWith("#/swarms/")) {
      try {
        return { swarm: decodeURIComponent(hash.slice("#/swarms/".length)) };
      } catch (error) {
        return { swarm: "" };
      }
    }
    const match = /[?&]page=(\d{1,7})/.exec(hash);
    return { page: match ? Math.max(1, Number(match[1])) : 1 };
  }

  function showToken(message) {
    tokenError.textContent = message;
    tokenPanel.hidden = false;
    tokenInput.focus();
  }

  async function show() {
    clearTimeout(timer);
    const mine = ++shown;
    const target = where();
    const path = target.swarm !== undefined ? "/api/swarms/" + encodeURIComponent(target.swarm) : "/api/swarms?page=" + target.page;
    try {
      const data = await api(path);
      if (mine !== shown) return;
      tokenPanel.hidden = true;
      const view = target.swarm !== undefined ? swarmPage(data) : overview(data, target.page);
      main.replaceChildren(view);
      main.dataset.view = view.dataset.view;
      main.dataset.loaded = String(Number(main.dataset.loaded || 0) + 1);
      software.textContent = data.software;
      forget.hidden = !sessionStorage.getItem(TOKEN_KEY);
      state.textContent = "updated " + new Date().toLocaleTimeString("en-GB");
    } catch (error) {
      if (mine !== shown) return;
      if (error.status === 401 || error.status === 403) {
        main.dataset.view = "token";
        main.replaceChildren();
        showToken(sessionStorage.getItem(TOKEN_KEY) ? error.message : "");
        state.textContent = "operator token needed";
        return; // no refresh until a token is given
      }
      main.dataset.view = "error";
      main.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
      state.textContent = "not updated";
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function refresh() {
    if (document.hidden) {
      timer = setTimeout(refresh, REFRESH_MS);
      return;
    }
    show();
  }

  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = tokenInput.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    tokenInput.value = "";
    show();
  });

  forget.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    forget.hidden = true;
    show();
  });

  window.addEventListener("hashchange", show);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) show();
  });
  show();
})();
