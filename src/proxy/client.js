// reload's client: in a page it follows builds and servers; as the SharedWorker it holds the
// one event stream all tabs share. Evaluates nothing: output only becomes textContent.
(() => {
const listen = (deliver) => {
  const source = new EventSource("/__reload/events");
  for (const type of "hello building failed trouble ready reload".split(" "))
    source.addEventListener(type, (e) => deliver(type, JSON.parse(e.data)));
};

if (typeof document == "undefined") {
  // A tab that comes late gets the state so far as a hello.
  let ports = [], state = {};
  listen((type, data) => {
    const { generation, build } = state;
    if (type == "hello") state = data;
    if (type == "building") state = { generation, build: "running" };
    if (type == "failed") state = { ...data, generation, build: "failed" };
    if (type == "trouble") state = { ...state, trouble: data };
    if (type == "ready") state = { ...data, build: "passed" }; // a ready ends its build
    for (const p of ports) p.postMessage({ type, data });
  });
  self.onconnect = (e) => {
    const port = e.ports[0];
    ports.push(port);
    port.onmessage = () => (ports = ports.filter((p) => p != port)); // the tab went
    if (state.build) port.postMessage({ type: "hello", data: state });
  };
  return;
}

// Who served this page; "0": the proxy's failed-build page.
const own = document.currentScript.dataset.generation;
let overlay, badge, dismissed;

const handle = (type, data) => {
  const { generation: g, build } = data;
  if (type == "reload" || (g != null && g != own)) return location.reload();
  if (type == "building" || build == "running") return (badge ||= show("bottom:0;right:0", "building\u2026"));
  badge = drop(badge);
  const news = type == "failed" || type == "trouble"; // trouble: the app exited, say
  if (news) dismissed = false;
  const shown = news || (build == "failed" && !dismissed) ? data : !dismissed && data.trouble;
  if (shown) showFailure(shown);
  else if (type == "ready" || build == "passed") overlay = drop(overlay);
};

const el = (tag, style, textContent = "") => Object.assign(document.createElement(tag), { style, textContent });
const drop = (host) => host && host.remove();
// In a shadow root under <html>: the page's CSS cannot reach it.
const show = (css, text) => {
  const host = el("reload-ui", "all:initial");
  host.attachShadow({ mode: "open" }).append(el("div", "position:fixed;z-index:2147483647;" +
    "background:#222;color:#ddd;font:13px monospace;padding:6px;" + css, text));
  document.documentElement.append(host);
  return host;
};

// What shows is decided in Rust: the headline's words, and the output with nothing left but
// text and SGR. Long lines wrap, even without spaces; the box scrolls down only.
const showFailure = (data) => {
  if (own == "0") return; // it shows the output
  drop(overlay);
  const pre = el("pre", "white-space:pre-wrap;overflow-wrap:anywhere"), close = el("button", "float:right", "close");
  close.onclick = () => (overlay = drop(overlay), dismissed = true);
  render(pre, data.output || "");
  overlay = show("top:0;left:0;right:0;max-height:75vh;overflow:auto");
  overlay.shadowRoot.firstChild.append(close, el("b", "color:#f77", data.headline), pre);
};

// page.rs's palette (of 38;5;n only these 16: rustc's).
const PALETTE = "#777 #e55 #5a5 #c92 #59f #b8f #3cc #ddd #999 #f77 #7e8 #eb4 #7cf #daf #5dd #fff".split(" ");
const ATTRS = [, "font-weight:bold", "opacity:.7", "font-style:italic", "text-decoration:underline"];
const sgr = (s, params) => {
  s = { ...s };
  const p = params.split(/[;:]/).map(Number);
  for (let i = 0; i < p.length; i++) {
    const n = p[i], t = n < 90 ? n : n - 60, key = t < 40 ? "color" : "background", d = t % 10;
    let c;
    if (!n) s = {};
    else if (n < 5) s[n] = ATTRS[n];
    else if (n == 22) delete s[1], delete s[2];
    else if (n == 23 || n == 24) delete s[n - 20];
    else if (t < 30 || t > 49 || (n > 89 && d > 7));
    else if (d < 8) c = PALETTE[d + (n > 89 ? 8 : 0)];
    else if (d == 9) delete s[key];
    else if (p[i + 1] == 5) c = PALETTE[p[(i += 2)]];
    else i += 4; // 2;r;g;b: the default colour
    if (c) s[key] = `${key}:${c}`;
  }
  return s;
};

const LOCATION = /([\w.\/-]+\.[a-z]\w*:\d+(?::\d+)?)/i;
const render = (pre, text, style = {}) =>
  text.split(/\x1b\[([\d;:]*)m/).forEach((part, i) => {
    if (i % 2) return (style = sgr(style, part));
    const look = Object.values(style).join(";") + ";";
    part.split(LOCATION) // locations at odd indexes
      .forEach((bit, j) => bit && pre.append(el("span", look + (j % 2 ? "background:#553" : ""), bit)));
  });

try {
  // One worker per origin (same URL and name): ten tabs, one stream.
  const worker = new SharedWorker(document.currentScript.src, { name: "reload" }), port = worker.port;
  worker.onerror = () => listen(handle); // a CSP forbids workers, say
  port.onmessage = (e) => handle(e.data.type, e.data.data);
  addEventListener("pagehide", () => port.postMessage("bye"));
  addEventListener("pageshow", (e) => e.persisted && location.reload()); // bfcache
} catch {
  listen(handle);
}
})();
