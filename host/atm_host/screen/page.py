"""The kiosk page (one self-contained HTML document): draws snapshots from /events, posts keys to /key."""

# ruff: noqa: E501, RUF001 - HTML/JS/CSS text with Chinese punctuation

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ATM</title>
<style>
 html,body{margin:0;height:100%;background:#0b2545;color:#fff;font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",
   "Microsoft YaHei",sans-serif;user-select:none;overflow:hidden}
 #app{display:grid;grid-template-rows:auto 1fr auto;height:100%}
 header{display:flex;justify-content:space-between;align-items:center;padding:14px 28px;background:#13315c}
 header .brand{font-size:26px;font-weight:700}
 #steps{display:flex;gap:10px}
 #steps span{width:34px;height:34px;border-radius:50%;background:#274c77;display:inline-flex;align-items:center;
   justify-content:center;font-weight:700}
 #steps span.on{background:#f4a259;color:#0b2545}
 main{display:flex;gap:32px;padding:24px 40px;align-items:center;justify-content:center}
 #left{flex:1;max-width:760px}
 #zh{font-size:52px;font-weight:700;line-height:1.25}
 #en{font-size:30px;color:#c9d6ea;margin-top:8px}
 #guide{margin-top:22px;font-size:32px;color:#ffd166;min-height:44px}
 #guide small{display:block;font-size:22px;color:#f2e3b3}
 #cam{width:480px;border-radius:18px;border:6px solid #274c77;display:none}
 #cam.face{border-color:#8ecae6}
 #pad{display:none;margin-top:22px}
 #dots{font-size:44px;letter-spacing:14px;min-height:56px}
 #amount{font-size:56px;font-weight:700;min-height:68px}
 .grid{display:none;grid-template-columns:repeat(3,130px);gap:12px}
 button{font-size:34px;height:80px;border:0;border-radius:14px;background:#eef4ed;color:#0b2545;font-weight:700}
 button.ok{background:#2a9d8f;color:#fff}
 button.cl{background:#e9c46a}
 #presets{display:none;gap:14px;flex-wrap:wrap;margin-top:18px}
 #presets button{width:180px;background:#8ecae6}
 #outcome{font-size:30px;margin-top:18px;color:#b7e4c7}
 #timer{font-size:20px;color:#8da9c4}
 footer{display:flex;justify-content:space-between;padding:14px 28px;background:#13315c}
 #cancel{background:#e76f51;color:#fff;width:260px;display:none}
 body.oos{background:#5c1a1b}
</style></head>
<body><div id="app">
<header><div class="brand">无卡取款 Cardless ATM</div><div id="steps"></div><div id="timer"></div></header>
<main>
 <div id="left">
  <div id="zh">…</div><div id="en"></div>
  <div id="guide"></div>
  <div id="pad"><div id="dots"></div><div id="amount"></div><div id="presets"></div></div>
  <div id="outcome"></div>
 </div>
 <div id="right"><img id="cam" alt="camera"><div class="grid" id="keys"></div></div>
</main>
<footer><div id="state"></div><button id="cancel" onclick="key('cancel')">取消 Cancel</button></footer>
</div>
<script>
const $ = (id) => document.getElementById(id);
const CAMERA = new Set(["idle", "face", "challenge"]);
let camTimer = null, last = null;
function key(k) {
  fetch("/key", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({key: k})});
}
function keypad() {
  const keys = ["1","2","3","4","5","6","7","8","9","clear","0","back"];
  const labels = {clear: "清除", back: "⌫"};
  const g = $("keys");
  for (const k of keys) {
    const b = document.createElement("button");
    b.textContent = labels[k] || k; b.dataset.key = k; if (k === "clear") b.className = "cl";
    b.onclick = () => key(k); g.appendChild(b);
  }
  const ok = document.createElement("button");
  ok.textContent = "确认 OK"; ok.className = "ok"; ok.dataset.key = "ok"; ok.style.gridColumn = "1 / span 3";
  ok.onclick = () => key("ok"); g.appendChild(ok);
}
function camera(on, face) {
  const img = $("cam");
  img.style.display = on ? "block" : "none";
  img.className = face ? "face" : "";
  if (on && !camTimer) {
    camTimer = setInterval(() => { img.src = "/frame.jpg?t=" + Date.now(); }, 200);
  } else if (!on && camTimer) { clearInterval(camTimer); camTimer = null; }
}
function draw(s) {
  last = s; (window.seen = window.seen || []).push(s.state + ":" + s.outcome);
  document.body.className = s.state === "out_of_service" ? "oos" : "";
  document.body.dataset.state = s.state;
  $("zh").textContent = s.prompt.zh; $("en").textContent = s.prompt.en;
  $("guide").innerHTML = s.guidance ? s.guidance.zh + "<small>" + s.guidance.en + "</small>" : "";
  if (s.state === "out_of_service" && s.causes_text.length) {
    $("guide").innerHTML = s.causes_text.map(c => c.zh).join("，") + "<small>" +
      s.causes_text.map(c => c.en).join(", ") + "</small>";
  }
  const steps = $("steps"); steps.innerHTML = "";
  for (let i = 1; i <= 5; i++) {
    const d = document.createElement("span"); d.textContent = i; if (i <= s.step) d.className = "on"; steps.appendChild(d);
  }
  const pad = s.keypad !== "";
  $("pad").style.display = pad ? "block" : "none";
  $("keys").style.display = pad ? "grid" : "none";
  $("dots").textContent = s.keypad && s.keypad !== "amount" ?
    "●".repeat(s.entered) + "○".repeat(Math.max(0, s.digits_needed - s.entered)) : "";
  $("amount").textContent = s.keypad === "amount" ? "¥ " + (s.amount || 0) : "";
  const pr = $("presets"); pr.innerHTML = "";
  pr.style.display = s.keypad === "amount" ? "flex" : "none";
  for (const p of s.presets) {
    const b = document.createElement("button"); b.textContent = "¥" + p; b.dataset.key = "preset:" + p;
    b.onclick = () => key("preset:" + p); pr.appendChild(b);
  }
  $("outcome").innerHTML = s.outcome_text ? s.outcome_text.zh + "<br>" + s.outcome_text.en : "";
  $("cancel").style.display = ["check_token","face","challenge","second_check","amount"].includes(s.state) ? "block" : "none";
  $("timer").textContent = s.deadline_s !== null ? Math.ceil(s.deadline_s) + " s" : "";
  $("state").textContent = s.state + (s.amount && s.keypad !== "amount" ? " · ¥" + s.amount : "");
  camera(CAMERA.has(s.state), s.state !== "idle");
}
keypad();
const es = new EventSource("/events");
es.onmessage = (e) => draw(JSON.parse(e.data));
</script></body></html>
"""
