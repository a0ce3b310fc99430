// The chat panel's transcript, prompt box, Send/Stop and status line (an anywidget ES module, no build step).
//
// The kernel sends the transcript as changes (see ipyg4f/panel/view.py): add a turn, append settled
// HTML to a part, replace a part's live tail, replace a turn with its final form, reset all.  Every
// HTML string in those messages was produced and sanitised by ipyg4f.render.html; everything else
// (prompts, labels, the status line) is text and only ever set with textContent.

const FOLLOW_SLACK = 24; // px from the bottom that still counts as "at the bottom"

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function button(label, classes, title) {
  const b = element("button", `jupyter-button widget-button ${classes}`, label);
  b.type = "button";
  b.title = title;
  return b;
}

// One exchange: prompt, who answers, the answer (streaming parts, or the final body), notes.
function turnView(turn, send) {
  const root = element("div", "ipyg4f-exchange");
  const box = element("div", "ipyg4f-turn");
  const prompt = element("div", "ipyg4f-prompt");
  prompt.append(element("b", "", "you"), document.createTextNode(": " + turn.prompt));
  const meta = element("div", "ipyg4f-meta");
  const answer = element("div", "ipyg4f-answer jp-RenderedHTMLCommon jp-RenderedMarkdown");
  const ask = element("div", "ipyg4f-ask-slot");
  const after = element("div", "ipyg4f-after");
  box.append(prompt, meta, answer, ask, after);
  root.append(box);
  const view = { root, box, meta, answer, ask, after, parts: {}, id: turn.id, send };
  show(view, turn);
  return view;
}

function show(view, turn) {
  view.box.dataset.status = turn.status;
  view.meta.textContent = turn.label;
  view.parts = {};
  view.waiting = null;
  if (turn.body !== undefined) {
    view.answer.innerHTML = turn.body; // sanitised server-side
    view.after.innerHTML = turn.after; // escaped server-side
    view.ask.replaceChildren();
    return;
  }
  // the "context sent" block and the tool steps so far: sanitised server-side
  view.answer.innerHTML = (turn.context || "") + (turn.steps || "");
  view.after.replaceChildren();
  question(view, turn.ask);
  const parts = turn.parts || {};
  if (!parts.thinking && !parts.answer) {
    view.waiting = element("em", "ipyg4f-waiting", `waiting for ${turn.label}…`);
    view.answer.append(view.waiting);
  }
  for (const name of ["thinking", "answer"]) {
    if (!parts[name]) continue;
    const p = part(view, name);
    p.tail.insertAdjacentHTML("beforebegin", parts[name].done); // sanitised server-side
    p.tail.innerHTML = parts[name].tail; // sanitised server-side
  }
}

// The approval question of a tool call: what would run, Approve / Refuse, and how it ended.  A click is
// a message to the kernel, which reads it only between cells (ipywidgets#3468): until the kernel says
// the question's new state, the question says the click was sent and is waiting for it.
function question(view, ask) {
  view.ask.replaceChildren();
  if (!ask) return;
  const box = element("div", "ipyg4f-ask");
  box.dataset.state = ask.state;
  box.dataset.n = String(ask.n);
  const title = element("div", "ipyg4f-ask-title", ask.title);
  const code = element("div", "ipyg4f-ask-code");
  code.innerHTML = ask.html; // highlighted code, escaped server-side
  const row = element("div", "ipyg4f-ask-actions");
  const yes = button("Approve", "mod-success ipyg4f-approve", "run this call");
  const no = button("Refuse", "mod-danger ipyg4f-refuse", "do not run it; the model is told you refused");
  const state = element("span", "ipyg4f-ask-state");
  const pending = ask.state === "pending";
  yes.disabled = no.disabled = !pending;
  state.textContent = pending ? "" : ask.state + (ask.note ? ` (${ask.note})` : "");
  row.append(yes, no, state);
  box.append(title, code, row);
  view.ask.append(box);
  const answer = (word) => {
    yes.disabled = no.disabled = true;
    box.dataset.state = "sent";
    state.textContent = `${word === "yes" ? "approve" : "refuse"} sent; the kernel reads it once no cell is running…`;
    view.send({ event: "approve", id: view.id, n: ask.n, answer: word });
  };
  yes.addEventListener("click", () => answer("yes"));
  no.addEventListener("click", () => answer("no"));
}

// A streaming part: settled HTML goes before `tail`, which is replaced on each update.  The thinking
// is open while it is all there is, then collapses above the answer.
function part(view, name) {
  if (view.parts[name]) return view.parts[name];
  if (view.waiting) { view.waiting.remove(); view.waiting = null; }
  const md = element("div", "ipyg4f-md");
  const tail = element("div", "ipyg4f-tail");
  md.append(tail);
  if (name === "thinking") {
    const details = element("details", "ipyg4f-thinking");
    details.open = !view.parts.answer;
    const summary = element("summary", "", view.parts.answer ? "Thought" : "Thinking…");
    const inner = element("div", "ipyg4f-thinking-body");
    inner.append(md);
    details.append(summary, inner);
    const answer = view.parts.answer;
    if (answer) answer.md.before(details); else view.answer.append(details);
    view.parts.thinking = { md, tail, details, summary };
  } else {
    view.answer.append(md);
    const thinking = view.parts.thinking;
    if (thinking) {
      thinking.details.open = false;
      thinking.summary.textContent = "Thought";
      thinking.details.classList.add("ipyg4f-settled");
    }
    view.parts.answer = { md, tail };
  }
  return view.parts[name];
}

function render({ model, el }) {
  const viewId = Math.random().toString(36).slice(2);
  let ready = false; // ops before this view's first snapshot are already in it
  const turns = new Map();

  const root = element("div", "ipyg4f-chat");
  const transcript = element("div", "ipyg4f-transcript");
  transcript.setAttribute("role", "log");
  const compose = element("div", "ipyg4f-compose");
  const input = element("textarea", "ipyg4f-prompt-input");
  input.rows = 3;
  input.placeholder = "Ask something… (Ctrl+Enter or ⌘+Enter sends)";
  const actions = element("div", "ipyg4f-actions");
  const send = button("Send", "mod-primary ipyg4f-send", "send the prompt (Ctrl+Enter)");
  const stop = button("Stop", "mod-warning ipyg4f-stop", "stop the answer; the partial answer is kept");
  const status = element("div", "ipyg4f-panel-status");
  const statusText = element("span", "ipyg4f-status-text");
  status.append(statusText);
  actions.append(send, stop, status);
  compose.append(input, actions);
  root.append(transcript, compose);
  el.append(root);

  // -- following the newest text, unless the user scrolled up ---------------------------
  // Scrolling up stops following; scrolling down to the last half-screen (a smooth scroll lands at
  // the bottom the content had when it started, and the answer may have grown since) follows again.
  let follow = true;
  let lastTop = 0;
  const fromBottom = () => transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight;
  const keepUp = () => {
    if (!follow) return;
    transcript.scrollTop = transcript.scrollHeight;
    lastTop = transcript.scrollTop;
  };
  const onScroll = () => {
    const top = transcript.scrollTop;
    if (fromBottom() <= FOLLOW_SLACK) follow = true; // at the bottom (or the content shrank under us)
    else if (top < lastTop - 1) follow = false; // the user went up
    else if (top > lastTop && fromBottom() < transcript.clientHeight / 2) follow = true;
    lastTop = top;
  };
  transcript.addEventListener("scroll", onScroll, { passive: true });
  // the user's own move up stops following at once: a smooth (animated) scroll up would otherwise be
  // undone by the next update before its first scroll event arrives
  transcript.addEventListener("wheel", (event) => { if (event.deltaY < 0) follow = false; }, { passive: true });
  transcript.addEventListener("keydown", (event) => {
    if (["ArrowUp", "PageUp", "Home"].includes(event.key)) follow = false;
  });

  // -- the transcript ---------------------------------------------------------------------
  const add = (turn) => {
    const view = turnView(turn, (msg) => model.send(msg));
    turns.set(turn.id, view);
    transcript.append(view.root);
  };
  const onMessage = (msg) => {
    if (!msg || typeof msg !== "object") return;
    if (msg.op === "sent") {
      emptyPrompt(msg.prompt);
      return;
    }
    if (msg.op === "reset") {
      if (msg.view && msg.view !== viewId) return; // another view's snapshot
      ready = true;
      turns.clear();
      transcript.replaceChildren();
      follow = true;
      for (const turn of msg.turns) add(turn);
    } else if (!ready) {
      return;
    } else if (msg.op === "add") {
      add(msg.turn);
      follow = true; // a new question: show it
    } else if (msg.op === "final" || msg.op === "turn") {
      const view = turns.get(msg.turn.id);
      if (view) show(view, msg.turn);
    } else if (msg.op === "ask") {
      const view = turns.get(msg.id);
      if (view) question(view, msg.ask);
    } else if (msg.op === "append" || msg.op === "tail") {
      const view = turns.get(msg.id);
      if (!view || (msg.part !== "answer" && msg.part !== "thinking")) return;
      view.box.dataset.status = "streaming";
      const p = part(view, msg.part);
      if (msg.op === "append") p.tail.insertAdjacentHTML("beforebegin", msg.html); // sanitised server-side
      else p.tail.innerHTML = msg.html; // sanitised server-side
    } else {
      return;
    }
    keepUp();
  };
  model.on("msg:custom", onMessage);

  // -- prompt, buttons, status --------------------------------------------------------------
  // The box's text is synced to the kernel as it is typed (the "prompt" trait); a send carries the
  // text itself, and the box is emptied only when the kernel says it sent it ({op: "sent"}), through
  // the same trait.  Emptying it through the trait matters: ipywidgets holds back a state update
  // while an earlier message is unanswered (after a dropdown change, or while the panel's own cell
  // runs), so the last keystrokes' update can reach the kernel after the send; emptying the box
  // locally and in the kernel, without a newer update of our own, let that late update and its echo
  // put the text back, and the next prompt was typed after it ("What is a quartile?What is a quartile?").
  const syncPrompt = () => {
    const prompt = model.get("prompt") || "";
    if (input.value !== prompt) input.value = prompt;
  };
  const savePrompt = () => {
    model.set("prompt", input.value);
    model.save_changes();
  };
  const emptyPrompt = (sent) => {
    if (typeof sent !== "string" || !input.value.startsWith(sent)) return; // replaced meanwhile: keep it
    input.value = input.value.slice(sent.length); // what was typed after the send stays
    savePrompt();
  };
  const sync = () => {
    const line = model.get("line") || {};
    statusText.textContent = line.text || "";
    statusText.dataset.kind = line.tone || "info";
    const busy = model.get("busy");
    send.disabled = busy;
    stop.disabled = !busy;
  };
  const submit = () => model.send({ event: "send", prompt: input.value });
  input.addEventListener("input", savePrompt);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      event.stopPropagation(); // not JupyterLab's "run cell"
      if (!send.disabled) submit();
    } else if (event.key === "Enter" && !event.shiftKey && !event.altKey) {
      event.stopPropagation(); // a newline, nothing else
    }
  });
  send.addEventListener("click", submit);
  stop.addEventListener("click", () => model.send({ event: "stop" }));
  for (const name of ["line", "busy"]) model.on(`change:${name}`, sync);
  model.on("change:prompt", syncPrompt);
  sync();
  syncPrompt();
  model.send({ event: "sync", view: viewId });

  return () => {
    model.off("msg:custom", onMessage);
    for (const name of ["line", "busy"]) model.off(`change:${name}`, sync);
    model.off("change:prompt", syncPrompt);
  };
}

export default { render };
