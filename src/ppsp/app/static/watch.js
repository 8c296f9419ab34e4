// The watch page of `ppsp watch`: the player, and this viewer's figures from stats.json.
//
// Stored content plays from `stream` (the browser seeks with Range requests). A live MPEG-TS
// stream plays as HLS (`live.m3u8`): through hls.js where the browser has Media Source
// Extensions, natively where it plays HLS itself (Safari on iOS), and any other live stream
// from `stream`. Every URL is relative, so the page also works behind a path prefix.
"use strict";

(function () {
  const body = document.body;
  const kind = body.dataset.kind;
  const offerHls = body.dataset.hls === "1";
  const video = document.getElementById("video");
  const statusLine = document.getElementById("player-status");
  const mediaLink = document.getElementById("media-url");
  const figureList = document.getElementById("figures");
  const chart = document.getElementById("chart");

  // -- figures --------------------------------------------------------------------------

  function bytes(count) {
    if (count == null) return "–";
    const units = [["GiB", 1 << 30], ["MiB", 1 << 20], ["KiB", 1 << 10]];
    for (const [unit, scale] of units) {
      if (count >= scale) return (count / scale).toFixed(1) + " " + unit;
    }
    return count + " B";
  }

  function seconds(value) {
    return value == null ? "–" : value.toFixed(2) + " s";
  }

  function percent(fraction, digits) {
    return fraction == null ? "–" : (100 * fraction).toFixed(digits) + " %";
  }

  function share(fromPeers, fromSource) {
    const total = (fromPeers || 0) + (fromSource || 0);
    return total === 0 ? "–" : percent(fromPeers / total, 1);
  }

  const FIGURES = {
    live: [
      ["state", "State", (s) => s.state],
      ["peers", "Peers connected", (s) => String(s.peers)],
      ["from-source", "From the source", (s) => bytes(s.bytes_from_source)],
      ["from-peers", "From peers", (s) => bytes(s.bytes_from_peers)],
      ["peer-share", "Share from peers", (s) => share(s.bytes_from_peers, s.bytes_from_source)],
      ["continuity", "Continuity", (s) => percent(s.continuity, 2)],
      ["delay", "Delay behind the source", (s) => seconds(s.delay_behind_source)],
      ["startup", "Startup delay", (s) => seconds(s.startup_delay)],
      ["chunks", "Chunks played / skipped", (s) => s.chunks_played + " / " + s.chunks_skipped],
      ["uploaded", "Uploaded to peers", (s) => bytes(s.uploaded_bytes)],
    ],
    stored: [
      ["state", "State", (s) => s.state],
      ["peers", "Peers connected", (s) => String(s.peers)],
      [
        "progress",
        "Downloaded",
        (s) => (s.chunks == null ? "–" : percent(s.progress, 1) + " (" + s.chunks_held + "/" + s.chunks + " chunks)"),
      ],
      ["from-source", "From seeders", (s) => bytes(s.bytes_from_seeders)],
      ["from-peers", "From other peers", (s) => bytes(s.bytes_from_peers)],
      ["peer-share", "Share from peers", (s) => share(s.bytes_from_peers, s.bytes_from_seeders)],
      ["uploaded", "Uploaded to peers", (s) => bytes(s.uploaded_bytes)],
    ],
  };
  const figures = FIGURES[kind] || FIGURES.stored;
  if (kind === "stored") document.getElementById("legend-source").textContent = "from seeders";

  const cells = {};
  for (const [key, label] of figures) {
    const term = document.createElement("dt");
    term.textContent = label;
    const value = document.createElement("dd");
    value.id = "fig-" + key;
    value.textContent = "–";
    figureList.append(term, value);
    cells[key] = value;
  }

  // Bytes per second from the source (or seeders) and from peers, the last 60 samples.
  const history = [];
  let previous = null;

  function record(stats) {
    const now = performance.now();
    const fromSource = (kind === "live" ? stats.bytes_from_source : stats.bytes_from_seeders) || 0;
    const fromPeers = stats.bytes_from_peers || 0;
    if (previous !== null && now > previous.at) {
      const elapsed = (now - previous.at) / 1000;
      history.push({
        source: Math.max(0, fromSource - previous.source) / elapsed,
        peers: Math.max(0, fromPeers - previous.peers) / elapsed,
      });
      if (history.length > 60) history.shift();
    }
    previous = { at: now, source: fromSource, peers: fromPeers };
  }

  function draw() {
    // Draw at the canvas's size on the screen, in device pixels (sharp text and lines).
    const ratio = window.devicePixelRatio || 1;
    const width = chart.clientWidth || 320;
    const height = chart.clientHeight || 120;
    if (chart.width !== Math.round(width * ratio) || chart.height !== Math.round(height * ratio)) {
      chart.width = Math.round(width * ratio);
      chart.height = Math.round(height * ratio);
    }
    const context = chart.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    const peak = Math.max(0, ...history.map((h) => Math.max(h.source, h.peers)));
    const top = Math.max(1, peak);
    context.fillStyle = "#8b949e";
    context.font = "11px sans-serif";
    context.fillText("peak " + bytes(Math.round(peak)) + "/s", 6, 14);
    const step = width / 59;
    for (const [field, colour] of [["source", "#f0883e"], ["peers", "#3fb950"]]) {
      context.strokeStyle = colour;
      context.lineWidth = 2;
      context.beginPath();
      history.forEach((sample, position) => {
        const x = width - (history.length - 1 - position) * step;
        const y = height - 2 - (sample[field] / top) * (height - 20);
        if (position === 0) context.moveTo(x, y);
        else context.lineTo(x, y);
      });
      context.stroke();
    }
  }

  async function refresh() {
    try {
      const answer = await fetch("stats.json", { cache: "no-store" });
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      const stats = await answer.json();
      for (const [key, , show] of figures) {
        let text = "–";
        try {
          text = show(stats);
        } catch (error) {
          // a figure not known yet (joining)
        }
        cells[key].textContent = text == null ? "–" : text;
      }
      record(stats);
      draw();
      body.classList.remove("stale");
    } catch (error) {
      body.classList.add("stale");
    }
  }

  refresh();
  setInterval(refresh, 1000);

  // -- the player ----------------------------------------------------------------------

  function setStatus(text, bad) {
    statusLine.textContent = text;
    statusLine.classList.toggle("bad", Boolean(bad));
  }

  function showLink(path) {
    mediaLink.href = path;
    mediaLink.textContent = new URL(path, window.location.href).href;
  }

  video.addEventListener("playing", () => setStatus("playing"));
  video.addEventListener("waiting", () => setStatus("buffering…"));
  video.addEventListener("seeking", () => setStatus("seeking…"));
  video.addEventListener("ended", () => setStatus("ended"));
  video.addEventListener("error", () => {
    const error = video.error;
    if (error) setStatus("media error " + error.code + (error.message ? ": " + error.message : ""), true);
  });

  function play() {
    const started = video.play();
    if (started !== undefined) {
      started.catch(() => setStatus("press play to start"));
    }
  }

  function playDirect() {
    showLink("stream");
    video.src = "stream";
    play();
  }

  function playHls(url) {
    const Hls = window.Hls;
    if (Hls && Hls.isSupported()) {
      const hls = new Hls({ liveDurationInfinity: true, backBufferLength: 30 });
      window.ppspHls = hls; // for a look from the developer tools
      hls.on(Hls.Events.ERROR, (event, data) => {
        if (!data.fatal) return;
        if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
          setStatus("network error (" + data.details + "), trying again…", true);
          setTimeout(() => {
            if (String(data.details).startsWith("manifest")) hls.loadSource(url);
            else hls.startLoad();
          }, 2000);
        } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          setStatus("media error (" + data.details + "), recovering…", true);
          hls.recoverMediaError();
        } else {
          setStatus("cannot play: " + data.details, true);
          hls.destroy();
        }
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      play();
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;
      play();
    } else {
      setStatus("this browser plays neither HLS nor Media Source Extensions: open the link below in a player", true);
    }
  }

  if (kind === "live" && offerHls) {
    showLink("live.m3u8");
    const script = document.createElement("script");
    script.src = "static/hls.min.js";
    script.onload = () => playHls("live.m3u8");
    script.onerror = () => {
      // Without hls.js, a browser that plays HLS itself still can.
      if (video.canPlayType("application/vnd.apple.mpegurl")) playHls("live.m3u8");
      else setStatus("cannot load hls.js", true);
    };
    document.body.append(script);
  } else {
    playDirect();
  }
})();
