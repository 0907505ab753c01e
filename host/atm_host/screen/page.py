"""The kiosk page (one self-contained HTML document): draws snapshots from /events, posts keys to /key."""

# ruff: noqa: E501, RUF001 - HTML/JS/CSS text with Chinese punctuation

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ATM</title>
<style>
 html,body{margin:0;height:100%;background:#0b2545;color:#fff;font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",
   "Microsoft YaHei",sans-serif;user-select:none;overflow:hidden}
 #app{display:grid;grid-template-rows:auto minmax(0,1fr) auto;height:100%}
 header{display:flex;justify-content:space-between;align-items:center;padding:14px 28px;background:#13315c}
 header .brand{font-size:26px;font-weight:700}
 #steps{display:flex;gap:10px}
 #steps span{width:34px;height:34px;border-radius:50%;background:#274c77;display:inline-flex;align-items:center;
   justify-content:center;font-weight:700}
 #steps span.on{background:#f4a259;color:#0b2545}
 main{display:flex;gap:32px;padding:24px 40px;align-items:center;justify-content:center;min-height:0}
 #left{flex:1;max-width:760px;min-width:0;overflow-wrap:anywhere}
 #zh{font-size:52px;font-weight:700;line-height:1.4}
 #en{font-size:30px;color:#c9d6ea;margin-top:8px}
 #guide{margin-top:22px;font-size:32px;color:#ffd166;min-height:44px}
 #guide small{display:block;font-size:22px;color:#f2e3b3}
 #cam{width:480px;border-radius:18px;border:6px solid #274c77;display:none}
 #cam.face{border-color:#8ecae6}
 #pad{display:none;margin-top:22px}
 #dots{font-size:44px;letter-spacing:14px;min-height:56px}
 #amount{font-size:56px;font-weight:700;min-height:68px}
 .grid{display:none;grid-template-columns:repeat(3,130px);gap:12px}
 button{font-size:34px;height:80px;border:0;border-radius:14px;background:#eef4ed;color:#0b2545;font-weight:700;
   line-height:1.05;padding:0 6px;overflow:hidden}
 button small{display:block;font-size:17px;font-weight:600}
 #limits{font-size:22px;color:#c9d6ea;margin-top:6px}
 button.ok{background:#2a9d8f;color:#fff}
 button.cl{background:#e9c46a}
 #presets{display:none;gap:14px;flex-wrap:wrap;margin-top:18px}
 #presets button{width:180px;background:#8ecae6}
 #outcome{font-size:30px;margin-top:18px;color:#b7e4c7}
 #timer{font-size:20px;color:#8da9c4}
 footer{display:flex;justify-content:space-between;align-items:center;gap:16px;padding:14px 28px;
   background:#13315c;font-size:20px;color:#c9d6ea}
 #cancel{background:#e76f51;color:#fff;width:260px;display:none}
 #help{margin-top:18px;font-size:26px;color:#fff;display:none}
 body.oos{background:#5c1a1b}
 body.oos #help{display:block}
 /* The Pi's 7" touch screen (800x480) and other small screens: everything smaller, nothing clipped. */
 @media (max-height:600px),(max-width:900px){
  header{padding:6px 16px} header .brand{font-size:20px}
  #steps{gap:6px} #steps span{width:24px;height:24px;font-size:14px} #timer{font-size:16px}
  main{gap:16px;padding:8px 16px}
  #zh{font-size:30px} #en{font-size:19px;margin-top:4px}
  #guide{margin-top:8px;font-size:20px;min-height:0} #guide small{font-size:15px}
  #cam{width:300px;border-width:4px}
  #pad{margin-top:8px} #dots{font-size:28px;letter-spacing:8px;min-height:34px}
  #amount{font-size:32px;min-height:38px} #limits{font-size:15px;margin-top:2px}
  .grid{grid-template-columns:repeat(3,88px);gap:6px}
  button{font-size:24px;height:50px;border-radius:10px} button small{font-size:12px}
  .grid button[data-key=ok]{height:44px}
  #presets{gap:8px;margin-top:8px} #presets button{width:100px;height:44px;font-size:22px}
  #outcome{font-size:20px;margin-top:8px} #help{font-size:18px;margin-top:8px}
  footer{padding:6px 16px;font-size:14px}
  #cancel{width:170px;height:44px;font-size:20px}
 }
</style></head>
<body><div id="app">
<header><div class="brand">无卡取款 Cardless ATM</div><div id="steps"></div><div id="timer"></div></header>
<main>
 <div id="left">
  <div id="zh">…</div><div id="en"></div>
  <div id="guide"></div>
  <div id="pad"><div id="dots"></div><div id="amount"></div><div id="limits"></div><div id="presets"></div></div>
  <div id="outcome"></div>
  <div id="help"></div>
 </div>
 <div id="right"><img id="cam" alt="camera"><div class="grid" id="keys"></div></div>
</main>
<footer><div id="atm"></div><button id="cancel" onclick="key('cancel')">取消 Cancel</button></footer>
</div>
<script>
const $ = (id) => document.getElementById(id);
const CAMERA = new Set(["idle", "face", "challenge"]);
let camTimer = null, last = null, info = {atm_id: "", helpline: "", note_multiple: 0};
function key(k) {
  fetch("/key", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({key: k})});
}
function keypad() {
  const keys = ["1","2","3","4","5","6","7","8","9","clear","0","back"];
  const labels = {clear: "清除<small>Clear</small>", back: "⌫<small>Back</small>"};
  const g = $("keys");
  for (const k of keys) {
    const b = document.createElement("button");
    if (labels[k]) { b.innerHTML = labels[k]; } else { b.textContent = k; }
    b.dataset.key = k; if (k === "clear") b.className = "cl";
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
  $("limits").textContent = s.keypad === "amount" ? limitsText(s) : "";
  const pr = $("presets"); pr.innerHTML = "";
  pr.style.display = s.keypad === "amount" ? "flex" : "none";
  for (const p of s.presets) {
    const b = document.createElement("button"); b.textContent = "¥" + p; b.dataset.key = "preset:" + p;
    b.onclick = () => key("preset:" + p); pr.appendChild(b);
  }
  $("outcome").innerHTML = s.outcome_text ? s.outcome_text.zh + "<br>" + s.outcome_text.en : "";
  $("cancel").style.display = ["check_token","face","challenge","second_check","amount"].includes(s.state) ? "block" : "none";
  $("timer").textContent = s.deadline_s !== null ? Math.ceil(s.deadline_s) + " s" : "";
  footer();
  camera(CAMERA.has(s.state), s.state !== "idle");
}
function limitsText(s) {
  const parts = [];
  if (s.max_amount) parts.push("最多 ¥" + s.max_amount + " Up to ¥" + s.max_amount);
  if (info.note_multiple) parts.push("须为 ¥" + info.note_multiple + " 的整数倍 In multiples of ¥" + info.note_multiple);
  return parts.join(" · ");
}
function footer() {
  // Who to call and which machine this is; never internal state names or a customer's amount.
  const line = info.helpline ? "客服热线 Helpline " + info.helpline : "";
  $("atm").textContent = [info.atm_id ? "ATM " + info.atm_id : "", line].filter(Boolean).join(" · ");
  $("help").textContent = info.helpline ?
    "如需帮助请致电 " + info.helpline + "，并告知编号 " + info.atm_id + " — Call " + info.helpline +
    " and quote ATM " + info.atm_id : "";
}
keypad();
fetch("/info").then(r => r.json()).then(i => { info = i; footer(); if (last) draw(last); });
const es = new EventSource("/events");
es.onmessage = (e) => draw(JSON.parse(e.data));
</script></body></html>
"""
