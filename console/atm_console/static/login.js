// Sign-in: JSON POST (a cross-site form cannot send it), then the console page.
"use strict";
document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = document.getElementById("error");
  err.textContent = "";
  const body = JSON.stringify({
    username: document.getElementById("username").value,
    password: document.getElementById("password").value,
  });
  const r = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"}, body});
  if (r.ok) { location.href = "/"; return; }
  const j = await r.json().catch(() => ({error: "sign-in failed"}));
  err.textContent = j.error || "sign-in failed";
});
