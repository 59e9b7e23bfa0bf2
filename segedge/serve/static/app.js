// segedge serve's page: polls /v1/status, shows the MJPEG stream, segments uploads. No libraries, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const STAGES = ["capture", "decode", "prepare", "inference", "mask", "encode"];
let classes = [], palette = [], streaming = false;

function pct(share) {
  if (share > 0 && share < 0.00005) return "<0.01 %";  // a few pixels: present, not nothing
  return (100 * share).toFixed(share >= 0.1 ? 1 : 2) + " %";
}
function rgb(index) { const c = palette[index] || [128, 128, 128]; return `rgb(${c[0]},${c[1]},${c[2]})`; }
function text(id, value) { $(id).textContent = value; }

function definitions(target, pairs) {
  target.replaceChildren();
  for (const [name, value] of pairs) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name; dd.textContent = value;
    target.append(dt, dd);
  }
}

function legend(target, shares, showAll) {
  // shares: {class name: fraction} (null: no camera, names and colours only); showAll lists every class
  // of the bundle, absent ones dimmed
  const withShares = shares !== null;
  shares = shares || {};
  target.replaceChildren();
  // the classes present first (largest share first), then the bundle's other classes dimmed, in class order
  const present = Object.keys(shares).sort((a, b) => shares[b] - shares[a]);
  const names = showAll ? present.concat(classes.filter((n) => !(n in shares))) : present;
  for (const name of names) {
    const share = shares[name] || 0, index = classes.indexOf(name);
    const li = document.createElement("li");
    if (!share && withShares) li.className = "absent";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = index >= 0 ? rgb(index) : "#fff";
    const label = document.createElement("span");
    label.className = "name"; label.textContent = name;
    const value = document.createElement("span");
    value.className = "share"; value.textContent = pct(share);
    li.append(swatch, label);
    if (withShares) li.append(value);
    target.append(li);
  }
}

function showStages(stages) {
  const table = $("stages");
  table.replaceChildren();
  const head = document.createElement("tr"), row = document.createElement("tr");
  for (const stage of STAGES) {
    const th = document.createElement("th"), td = document.createElement("td");
    if (!(stage in stages)) continue;  // capture is the camera's, decode an upload's
    th.textContent = stage; td.textContent = stages[stage].toFixed(2);
    head.append(th); row.append(td);
  }
  table.append(head, row);
}

function showModel(model, parity) {
  text("model-line", model.description);
  definitions($("model"), [
    ["artifact", `${model.artifact} (${model.runtime} ${model.precision})`], ["file", model.file],
    ["size", (model.bytes / 1e6).toFixed(2) + " MB"], ["input", model.input.join(" × ")],
    ["threads", `${model.threads} (${model.copies} cop${model.copies === 1 ? "y" : "ies"})`],
    ["upsample", model.upsample], ["loaded", `generation ${model.generation}`],
  ]);
  const v = parity.export_verification || {}, c = parity.self_check || {};
  const pairs = [];
  if (v.agreement !== undefined) pairs.push(["agreement (export)", pct(v.agreement) + ` on ${v.images} image(s)`]);
  if (v.miou !== undefined && v.miou !== null) pairs.push(["mIoU (export)", pct(v.miou)]);
  if (v.max_abs_logit_error !== undefined) pairs.push(["max |Δlogit|", Number(v.max_abs_logit_error).toPrecision(3)]);
  pairs.push(["self-check", c.agreement === null || c.agreement === undefined ? (c.note || "–")
    : `${c.ok ? "passed" : "FAILED"}: ${pct(c.agreement)} on ${c.images} reference image(s) (bound ${pct(c.bound)})`]);
  definitions($("parity"), pairs);
}

async function poll() {
  try {
    const response = await fetch("/v1/status", {cache: "no-store"});
    if (!response.ok) throw new Error((await response.json()).error || response.statusText);
    const status = await response.json();
    classes = status.classes; palette = status.palette;
    const health = status.health;
    $("health").textContent = health.status;
    $("health").className = "badge " + (health.ok ? "ok" : "bad");
    showModel(status.model, status.parity);
    const camera = status.camera;
    if (camera) {
      text("camera-state", `${camera.source}: ${camera.state} — ${camera.detail}`);
      text("fps", camera.fps.toFixed(1)); text("frames", camera.frames); text("dropped", camera.dropped);
      legend($("legend"), camera.shares, true);
      showStages(status.stages_ms.camera || {});
      if (!streaming) { $("stream").src = "/v1/stream.mjpg"; $("stream").hidden = false; streaming = true; }
    } else {
      text("camera-state", ""); $("no-camera").hidden = false;
      $("snapshot").parentElement.hidden = true; $("camera-figures").hidden = true;
      text("live-title", "Live: no camera"); text("legend-title", "The bundle's classes");
      text("stages-title", "Per-stage time of uploads (ms, rolling mean)");
      legend($("legend"), null, true);
      showStages(status.stages_ms.upload || {});
    }
  } catch (err) {
    $("health").textContent = "unreachable"; $("health").className = "badge bad";
    text("camera-state", String(err.message || err));
  }
}

async function download(url, fallback) {
  const response = await fetch(url, {cache: "no-store"});
  if (!response.ok) throw new Error((await response.json()).error);
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = disposition.match(/filename="([^"]+)"/);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = match ? match[1] : fallback;
  document.body.append(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  return [link.download, response.headers.get("X-Segedge-Frame")];
}

$("snapshot").addEventListener("click", async () => {
  try {
    // the mask of the very frame whose overlay was saved (the server keeps the last few drawn)
    const [overlay, frame] = await download("/v1/snapshot.jpg", "overlay.jpg");
    const [mask] = await download(`/v1/snapshot.png?frame=${frame}`, "mask.png");
    text("snapshot-note", `saved ${overlay} and ${mask}`);
  } catch (err) { text("snapshot-note", String(err.message || err)); }
});

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("upload").files[0];
  $("upload-error").hidden = true;
  if (!file) { $("upload-error").textContent = "choose a photo first"; $("upload-error").hidden = false; return; }
  const form = new FormData();
  form.append("image", file);
  try {
    const response = await fetch("/v1/segment?format=json&include=overlay,mask", {method: "POST", body: form});
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    $("upload-overlay").src = "data:image/jpeg;base64," + body.overlay_jpeg_base64;
    $("upload-mask").src = "data:image/png;base64," + body.mask_png_base64;
    const shares = {};
    for (const c of body.classes) shares[c.name] = c.share;
    legend($("upload-legend"), shares, false);
    text("upload-timing", `${body.width} × ${body.height} px · ` +
      Object.entries(body.timings_ms).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(" · "));
    $("upload-result").hidden = false;
  } catch (err) {
    $("upload-error").textContent = String(err.message || err); $("upload-error").hidden = false;
  }
});

poll();
setInterval(poll, 500);
