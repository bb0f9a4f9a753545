// The console's entry: picks the page from the URL, refreshes it once a second, shows
// `Disconnected` while the broker is away, and runs actions with their notices.

import { ApiError, Away, setTokenPrompt } from "./api.js";
import { connectionsPage } from "./connections.js";
import { deadLettersPage, deadQueuePage } from "./dead.js";
import { askToken } from "./dialogs.js";
import { el, setText } from "./dom.js";
import { overviewPage } from "./overview.js";
import { queuePage } from "./queue.js";

const PERIOD_MS = 1000;

const ROUTES = [
  [/^\/$/, "overview", overviewPage],
  [/^\/queues\/([^/]+)$/, "overview", queuePage],
  [/^\/dead-letters$/, "dead-letters", deadLettersPage],
  [/^\/dead-letters\/([^/]+)$/, "dead-letters", deadQueuePage],
  [/^\/connections$/, "connections", connectionsPage],
];

function notFoundPage() {
  const node = el("div", {}, el("h1", {}, "No such page"), el("p", {}, el("a", { href: "/" }, "Overview")));
  return { title: "No such page", node, refresh: async () => {} };
}

class Console {
  constructor() {
    this.readOnly = document.documentElement.dataset.readOnly === "true";
    this.banner = document.getElementById("disconnected");
    this.notice = document.getElementById("notice");
    this.status = document.getElementById("status");
    this.timer = null;
    this.running = false;
  }

  start() {
    document.getElementById("mode").hidden = !this.readOnly;
    setTokenPrompt(askToken);
    const page = this.route(location.pathname);
    document.title = `${page.title} · WonderQ`;
    document.getElementById("main").append(page.node);
    this.page = page;
    this.tick();
  }

  route(pathname) {
    for (const [pattern, nav, make] of ROUTES) {
      const match = pattern.exec(pathname);
      if (match === null) continue;
      for (const link of document.querySelectorAll("[data-nav]")) {
        if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
      }
      const arg = match[1] === undefined ? undefined : decodeURIComponent(match[1]);
      return make(this, arg);
    }
    return notFoundPage();
  }

  /** Refresh the page now, then once a second (never two refreshes at once). */
  async tick() {
    clearTimeout(this.timer);
    if (this.running) return;
    this.running = true;
    try {
      await this.page.refresh();
      this.setAway(false);
    } catch (error) {
      this.failed(error);
    } finally {
      this.running = false;
      this.timer = setTimeout(() => this.tick(), PERIOD_MS);
    }
  }

  failed(error) {
    if (error instanceof Away) {
      this.setAway(true);
    } else if (error instanceof ApiError) {
      this.setAway(false);
      this.say(error.message, true);
    } else {
      throw error;
    }
  }

  setAway(away) {
    setText(this.status, away ? "disconnected" : "live, every second");
    if (this.banner.hidden === !away) return;
    this.banner.hidden = !away;
    document.body.classList.toggle("away", away);
  }

  say(text, isError = false) {
    this.notice.textContent = text;
    this.notice.classList.toggle("error", isError);
  }

  /** Run `action` (an API call); say what it did (`describe(reply)`), then refresh. */
  async act(action, describe) {
    try {
      const reply = await action();
      this.say(describe(reply));
    } catch (error) {
      if (error instanceof Away) this.say("The broker does not answer: the action may not have been applied.", true);
      else if (error instanceof ApiError) this.say(`Refused: ${error.message}`, true);
      else throw error;
    }
    await this.tick();
  }
}

const wonderq = new Console();
wonderq.start();
