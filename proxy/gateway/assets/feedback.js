/* <feedback-widget>: thumbs up / down for one answer of an LLM, served by feedback-proxy at
 * GET /feedback.js. No dependencies, no build step.
 *   <script src="https://proxy.example/feedback.js" defer></script>
 *   <feedback-widget token="X-Feedback-Token of the answer" comment reasons></feedback-widget>
 * Attributes: token (required), endpoint (default: the origin this script came from),
 * comment (offer a comment after a thumbs-down), reasons (offer the proxy's reasons, or the
 * comma-separated ones given), target="span" (rate the answer's span, not its whole trace),
 * feedback-id (default: derived from the answer's span, so a changed vote replaces the last).
 * Style it with --fw-* custom properties and ::part(button|helpful|not-helpful|details|comment|
 * reason|send|status). Fires "feedback-sent" (detail: what was recorded) on success.
 * The token is read from its attribute when a vote is sent and kept nowhere else. */
(() => {
  const REASONS = /*@reasons*/[];
  const SCRIPT = document.currentScript;
  const ORIGIN = new URL(SCRIPT && SCRIPT.src ? SCRIPT.src : location.href).origin;
  const CSS = `:host{display:inline-block;font:var(--fw-font,inherit);color:var(--fw-color,inherit)}
.row{display:flex;gap:.4em;align-items:center;flex-wrap:wrap}
button{font:inherit;cursor:pointer;border:1px solid var(--fw-border,#888);border-radius:var(--fw-radius,.4em);
background:var(--fw-background,transparent);color:inherit;padding:.2em .6em}
button[aria-pressed=true]{background:var(--fw-accent,#2563eb);border-color:var(--fw-accent,#2563eb);color:var(--fw-accent-text,#fff)}
button:focus-visible,textarea:focus-visible,select:focus-visible{outline:2px solid var(--fw-focus,#2563eb);outline-offset:2px}
.details{display:flex;flex-direction:column;gap:.4em;margin-top:.4em}
.details label{display:flex;flex-direction:column;gap:.15em;font-size:.9em}
select,textarea{font:inherit;min-width:16em}
.details button{align-self:flex-start}
.details[hidden]{display:none}
[data-state=failed]{color:var(--fw-error,#b91c1c)}
.status{font-size:.9em}`;
  const TEXT = { positive: "Helpful", negative: "Not helpful" };
  const label = (reason) => reason.replace(/[_-]+/g, " ").replace(/^./, (c) => c.toUpperCase());

  function tokenIds(token) {  // v1.<trace>.<span>.<expiry>.<signature>, IDs in base64url
    const part = (s) => new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(
      atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)));
    const parts = (token || "").split(".");
    try {
      if (parts.length === 5) return { trace: part(parts[1]), span: part(parts[2]) };
    } catch {}  // not base64url or not UTF-8: the same answer as a wrong shape
    throw new Error("Not sent: the feedback token is missing or malformed.");
  }
  const randomId = () => "fw:" + Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0")).join("");

  function failure(status, answer) {
    const code = answer && answer.error && answer.error.code;
    if (code === "expired_feedback_token") return "This answer can no longer be rated: its feedback token has expired.";
    if (status === 401) return "Not sent: the feedback token was refused.";
    return "Not sent: " + ((answer && answer.error && answer.error.message) || "the proxy answered " + status) + ".";
  }

  class FeedbackWidget extends HTMLElement {
    #vote = null;
    #queue = Promise.resolve();
    #sends = 0;
    #ownId = null;
    #el = {};

    constructor() {
      super();
      const root = this.attachShadow({ mode: "open" });
      root.innerHTML = `<style>${CSS}</style><div class="row" part="row">
<button type="button" part="button helpful" data-vote="positive" aria-pressed="false"><span aria-hidden="true">\u{1F44D}</span> ${TEXT.positive}</button>
<button type="button" part="button not-helpful" data-vote="negative" aria-pressed="false"><span aria-hidden="true">\u{1F44E}</span> ${TEXT.negative}</button></div>
<form class="details" part="details" hidden><label>Reason <select part="reason" name="reason"><option value="">(no reason)</option></select></label>
<label>Comment (optional)<textarea part="comment" name="comment" rows="2" maxlength="2000"></textarea></label>
<button type="submit" part="button send">Send</button></form>
<div class="status" part="status" role="status" aria-live="polite"></div>`;
      const $ = (s) => root.querySelector(s);
      this.#el = { form: $("form"), reason: $("select"), comment: $("textarea"), status: $(".status"),
        buttons: root.querySelectorAll("button[data-vote]") };
      for (const button of this.#el.buttons) {
        button.addEventListener("click", () => this.#choose(button.dataset.vote));
      }
      this.#el.form.addEventListener("submit", (event) => { event.preventDefault(); this.#send(); });
    }

    connectedCallback() {
      const own = this.getAttribute("reasons");
      const reasons = own ? own.split(",").map((r) => r.trim()).filter(Boolean) : REASONS;
      this.#el.reason.parentElement.hidden = !this.hasAttribute("reasons") || !reasons.length;
      this.#el.comment.parentElement.hidden = !this.hasAttribute("comment");
      this.#el.reason.length = 1;
      for (const reason of reasons) this.#el.reason.add(new Option(label(reason), reason));
    }

    get vote() { return this.#vote; }

    #choose(vote) {
      this.#vote = vote;
      for (const button of this.#el.buttons) button.setAttribute("aria-pressed", String(button.dataset.vote === vote));
      const details = vote === "negative" && (this.hasAttribute("comment") || this.hasAttribute("reasons"));
      this.#el.form.hidden = !details;
      this.#send();
    }

    #send() {
      const vote = this.#vote;
      const attributes = { user_feedback: vote };
      if (vote === "negative" && !this.#el.form.hidden) {
        if (this.#el.comment.value.trim()) attributes.user_feedback_comment = this.#el.comment.value.trim();
        if (this.#el.reason.value) attributes.feedback_reason = this.#el.reason.value;
      }
      const send = ++this.#sends;  // only the latest send may set the status
      this.#show("sending", "Sending\u2026");
      this.#queue = this.#queue.then(() => this.#post(attributes)).then(
        (detail) => {
          const extra = detail.attributes.user_feedback_comment || detail.attributes.feedback_reason ? " with your details" : "";
          if (send === this.#sends) this.#show("sent", `Thanks! Recorded: ${TEXT[vote].toLowerCase()}${extra}.`);
          this.dispatchEvent(new CustomEvent("feedback-sent", { detail, bubbles: true, composed: true }));
        },
        (error) => { if (send === this.#sends) this.#show("failed", error.message); });
    }

    async #post(attributes) {
      const token = this.getAttribute("token");
      const ids = tokenIds(token);
      // One ID per widget: from the answer's span (stable across page loads), else made once.
      const feedbackId = this.getAttribute("feedback-id") ||
        (ids.span.length <= 125 ? "fw:" + ids.span : (this.#ownId ||= randomId()));
      const body = { trace_id: ids.trace, feedback_id: feedbackId, attributes };
      if (this.getAttribute("target") === "span") body.span_id = ids.span;
      let response;
      try {
        response = await fetch((this.getAttribute("endpoint") || ORIGIN).replace(/\/+$/, "") + "/feedback", {
          method: "POST", mode: "cors", credentials: "omit",
          headers: { "Content-Type": "application/json", "X-Feedback-Token": token }, body: JSON.stringify(body) });
      } catch {
        throw new Error("Not sent: the feedback service could not be reached, or it does not accept this page's origin.");
      }
      const answer = await response.json().catch(() => null);
      if (!response.ok) throw new Error(failure(response.status, answer));
      return { traceId: ids.trace, spanId: ids.span, feedbackId, attributes, status: answer && answer.status };
    }

    #show(state, text) {
      this.setAttribute("state", state);
      this.#el.status.dataset.state = state;
      this.#el.status.textContent = text;
    }
  }

  if (!customElements.get("feedback-widget")) customElements.define("feedback-widget", FeedbackWidget);
})();
