// The page's Live tab: the browser's microphone to the server's /stream WebSocket (float32 at
// the microphone's own rate; the server resamples), its events shown as they come: the
// current emotion, its probabilities, the last minute as a timeline with speech shaded, and a
// list of the windows. Runs as the gr.HTML's js_on_load, so `element` is the tab's HTML.
const classes = JSON.parse(element.querySelector("#live").dataset.classes);
const colours = JSON.parse(element.querySelector("#live").dataset.colours);  // emotions.py's
const $ = (id) => element.querySelector("#" + id);
const button = $("live-start"), status = $("live-status"), list = $("live-windows");
const canvas = $("live-timeline"), bars = $("live-bars");
const SPAN = 60;  // seconds on the timeline
let socket = null, context = null, media = null, sending = false;
let regions = [], windows = [], heard = 0, rate = 48000;

for (const [i, name] of classes.entries()) {
  bars.insertAdjacentHTML("beforeend",
    `<div class="live-row"><span>${name}</span><div class="live-track">` +
    `<div class="live-bar" id="live-p-${name}" style="background:${colours[i]}"></div>` +
    `</div><span class="live-value" id="live-v-${name}"></span></div>`);
}

const AXIS = 18;  // pixels under the rows for the time axis
const TICK = 10;  // seconds between its marks

function draw() {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height - AXIS;
  const now = Math.max(heard, SPAN), x = (t) => w * (t - (now - SPAN)) / SPAN;
  const row = h / classes.length;
  g.clearRect(0, 0, w, canvas.height);
  g.fillStyle = "#e8e8e8";
  for (const r of regions) g.fillRect(x(r.start), 0, x(r.end ?? heard) - x(r.start), h);
  for (const e of windows) {
    const i = classes.indexOf(e.label);
    g.globalAlpha = 0.35 + 0.65 * e.confidence;
    g.fillStyle = colours[i];
    g.fillRect(x(e.start), i * row + 2, Math.max(2, x(e.end) - x(e.start)), row - 4);
  }
  g.globalAlpha = 1;
  g.fillStyle = "#444";
  g.strokeStyle = "#999";
  g.font = "11px sans-serif";
  classes.forEach((name, i) => g.fillText(name, 4, i * row + row / 2 + 4));
  g.beginPath();  // the time axis: seconds since Start, a mark every TICK s
  g.moveTo(0, h + 0.5);
  g.lineTo(w, h + 0.5);
  for (let t = Math.ceil((now - SPAN) / TICK) * TICK; t <= now; t += TICK) {
    g.moveTo(x(t) + 0.5, h);
    g.lineTo(x(t) + 0.5, h + 4);
    g.fillText(`${t} s`, Math.min(Math.max(x(t) - 8, 0), w - 30), h + 15);
  }
  g.stroke();
}

function show(event) {
  if (event.type === "speech_start") regions.push({start: event.time});
  else if (event.type === "speech_end" && regions.length) regions.at(-1).end = event.time;
  else if (event.type === "window") {
    windows.push(event);
    $("live-label").textContent = `${event.label} ${event.confidence.toFixed(2)}`;
    for (const name of classes) {
      $("live-p-" + name).style.width = `${(100 * event[name]).toFixed(1)}%`;
      $("live-v-" + name).textContent = event[name].toFixed(2);
    }
    list.insertAdjacentHTML("afterbegin",
      `<li data-label="${event.label}" data-start="${event.start}">` +
      `${event.start.toFixed(2)}–${event.end.toFixed(2)} s: ${event.label} ` +
      `${event.confidence.toFixed(2)}</li>`);
  } else if (event.type === "error") status.textContent = `Stopped: ${event.message}`;
  draw();
}

async function start() {
  media = await navigator.mediaDevices.getUserMedia({audio: {
    channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
  context = new AudioContext();
  rate = context.sampleRate;
  regions = []; windows = []; heard = 0; list.innerHTML = "";
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  socket = new WebSocket(scheme + location.host + "/stream");
  socket.binaryType = "arraybuffer";
  socket.onopen = () => socket.send(JSON.stringify({sample_rate: rate, format: "float32"}));
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "options") { sending = true; status.textContent = "Listening…"; }
    else if (event.type === "done") status.textContent = "Stopped.";
    else show(event);
  };
  socket.onclose = (closed) => {
    sending = false;
    if (closed.code !== 1000 && !status.textContent.startsWith("Stopped"))
      status.textContent = `Stopped: ${closed.reason || "the connection closed"}`;
    stopAudio();
  };
  const source = context.createMediaStreamSource(media);
  const processor = context.createScriptProcessor(4096, 1, 1);
  processor.onaudioprocess = (e) => {
    if (!sending) return;
    const samples = new Float32Array(e.inputBuffer.getChannelData(0));
    heard += samples.length / rate;
    socket.send(samples.buffer);
    draw();
  };
  source.connect(processor);
  processor.connect(context.destination);  // a processor runs only when connected; it outputs silence
  button.textContent = "Stop";
}

function stopAudio() {
  if (media) media.getTracks().forEach((track) => track.stop());
  if (context) context.close();
  media = context = null;
  button.textContent = "Start";
}

function stop() {
  sending = false;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({type: "end"}));
  stopAudio();
}

button.addEventListener("click", () => {
  if (button.textContent === "Stop") stop();
  else start().catch((error) => { status.textContent = `No microphone: ${error.message}`; });
});
draw();
