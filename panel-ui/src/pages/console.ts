// The in-browser console: noVNC for the display, xterm.js for the serial terminal. Each
// connection fetches a fresh one-use token; a dropped connection reconnects by itself with a new
// token, and refusals and closes are told in plain words.
import RFB from '@novnc/novnc';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { api, ApiError, explain, type Schemas, unwrap } from '../api';
import { h, mount, notice, say } from '../dom';
import { openTerminal } from '../xterm-styles';

type Kind = Schemas['ConsoleKind'];
type CloseCode = Schemas['ConsoleCloseCode'];

/**
 * Every close code the daemon sends, in words, and whether reconnecting by ourselves makes sense.
 * Typed by the daemon's list: a code it drops, or one it adds, fails the build until this follows.
 */
const CLOSES: Record<CloseCode, [string, boolean]> = {
  1000: ['The console closed.', false],
  1001: ['The server is restarting.', true],
  1002: ['The console could not start: the panel and the server disagree on its protocol. Reload the page.', false],
  1011: ['The console could not be opened on the VM\'s host.', true],
  4003: ['The VM was suspended, so its console closed.', false],
  4004: ['An operator closed this console session.', false],
  4005: ['The VM was terminated, so its console closed.', false],
  4008: ['The console closed after a period without activity.', false],
  4009: ['The console session reached its time limit and expired.', false],
  4010: ['The VM\'s host closed the console.', true],
  4011: ['The connection stopped answering.', true],
  4029: ['Too many consoles are open (yours, or on the server). Close another console, then reconnect.', false],
};

/** A close the browser reports itself when no close frame arrived: the daemon never sends it. */
const CONNECTION_LOST = 1006;

function isCloseCode(code: number): code is CloseCode {
  return Object.hasOwn(CLOSES, code);
}

/** What a close means, in words, and whether to reconnect. */
function closeMeaning(code: number): [string, boolean] {
  if (isCloseCode(code)) return CLOSES[code];
  if (code === CONNECTION_LOST) return ['The connection was lost.', true];
  return ['The console closed unexpectedly.', true];
}
const MAX_RETRIES = 5;

let active: Session | null = null;

/** Called on every navigation: a console never outlives its page. */
export function stopConsole(): void {
  active?.stop();
  active = null;
}

/** When the Console link was clicked, for the click → first frame measurement. */
let clickedAt: number | null = null;
document.addEventListener('click', (event) => {
  const a = (event.target as Element | null)?.closest?.('#open-console');
  if (a) clickedAt = performance.now();
}, true);

function refusal(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 409 && /suspended/.test(err.message)) return 'This VM is suspended, so its console is unavailable. Contact support to have it reactivated.';
    if (err.status === 409 && /not running/.test(err.message)) return 'This VM is not running. Start it from its page, then open the console.';
    if (err.status === 409) return `The console is unavailable: ${err.message}.`;
    if (err.status === 429) return 'You have reached the limit of open consoles. Close another console window and try again.';
  }
  return explain(err);
}

class Session {
  private socket: WebSocket | null = null;
  private rfb: RFB | null = null;
  private term: Terminal | null = null;
  private fit: FitAddon | null = null;
  private retries = 0;
  private stopped = false;
  private retryTimer: number | undefined;
  private resizeObserver: ResizeObserver | null = null;

  constructor(private id: number, private kind: Kind, private screen: HTMLElement, private status: HTMLElement, private reconnectButton: HTMLButtonElement) {}

  async connect(): Promise<void> {
    window.clearTimeout(this.retryTimer);
    this.teardown();
    this.reconnectButton.hidden = true;
    say(this.status, this.retries ? `Reconnecting (attempt ${this.retries})…` : 'Connecting…', 'info');
    let ticket: Schemas['ConsoleTicket'];
    try {
      ticket = await unwrap(api.POST('/vms/{id}/console', { params: { path: { id: this.id } }, body: { kind: this.kind } }));
    } catch (err) {
      this.screen.dataset.state = 'refused';
      say(this.status, refusal(err), 'error');
      const transient = !(err instanceof ApiError) || err.status >= 500;
      this.offerReconnect(transient);
      return;
    }
    if (this.stopped) return;
    const socket = new WebSocket(ticket.url, ['binary']);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.retries = 0;
      this.screen.dataset.state = 'open';
      say(this.status, '', 'info');
    });
    socket.addEventListener('close', (event) => this.closed(socket, event));
    if (this.kind === 'vnc') this.startVnc(socket);
    else this.startTerm(socket);
  }

  private startVnc(socket: WebSocket): void {
    const rfb = new RFB(this.screen, socket, { shared: true });
    this.rfb = rfb;
    this.fitToScreen(this.fitted);
    rfb.focusOnClick = true;
    rfb.addEventListener('connect', () => {
      rfb.focus();
      watchFirstFrame(this.screen);
    });
  }

  /**
   * Scaled to the frame, or at its own size and panned by dragging. A phone's frame is narrower
   * than any VM's screen: scaled, its text is too small to read, so narrow screens start at the
   * VM's own size.
   */
  fitted = window.matchMedia('(min-width: 700px)').matches;

  fitToScreen(fit: boolean): void {
    this.fitted = fit;
    if (!this.rfb) return;
    this.rfb.scaleViewport = fit;
    this.rfb.clipViewport = !fit;
    this.rfb.dragViewport = !fit;
  }

  /** Types what a phone's on-screen keyboard produced into the VM, one key at a time. */
  typeText(text: string): void {
    for (const char of text) {
      const code = char.codePointAt(0) ?? 0;
      // X keysyms: Latin-1 is its own code, the rest of Unicode is offset (RFB 6143, X11 keysyms).
      this.rfb?.sendKey(code < 0x100 ? code : 0x01000000 + code, null);
    }
  }

  /** The keys an on-screen keyboard sends as keydown only, as X keysyms. */
  typeKey(key: string): boolean {
    const keysym = ({ Backspace: 0xff08, Enter: 0xff0d, Tab: 0xff09, Escape: 0xff1b, ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54 } as Record<string, number>)[key];
    if (keysym === undefined || !this.rfb) return false;
    this.rfb.sendKey(keysym, null);
    return true;
  }

  private startTerm(socket: WebSocket): void {
    // At a line height of 1 the rows clip what hangs below the baseline: Debian's default monospace
    // font draws `_` there, and `x86_64` read as `x86 64`.
    const term = new Terminal({ cursorBlink: true, fontSize: 14, lineHeight: 1.2, convertEol: false, scrollback: 2000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    openTerminal(term, this.screen);
    const encoder = new TextEncoder();
    term.onData((data) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(`0:${encoder.encode(data).length}:${data}`);
    });
    term.onResize(({ cols, rows }) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(`1:${cols}:${rows}:`);
    });
    socket.addEventListener('open', () => {
      fit.fit();
      socket.send(`1:${term.cols}:${term.rows}:`);
      term.focus();
    });
    socket.addEventListener('message', (event) => {
      if (typeof event.data === 'string') term.write(event.data);
      else term.write(new Uint8Array(event.data as ArrayBuffer));
    });
    this.resizeObserver = new ResizeObserver(() => fit.fit());
    this.resizeObserver.observe(this.screen);
    this.term = term;
    this.fit = fit;
  }

  private closed(socket: WebSocket, event: CloseEvent): void {
    if (this.stopped || socket !== this.socket) return;
    const [text, retry] = closeMeaning(event.code);
    this.screen.dataset.state = 'closed';
    this.screen.dataset.closeCode = String(event.code);
    if (retry && this.retries < MAX_RETRIES) {
      this.retries += 1;
      const delay = Math.min(8000, 500 * 2 ** (this.retries - 1));
      say(this.status, `${text} Reconnecting in ${Math.round(delay / 1000) || 1} s…`, 'info');
      this.retryTimer = window.setTimeout(() => void this.connect(), delay);
      return;
    }
    say(this.status, text, 'error');
    this.offerReconnect(true);
  }

  private offerReconnect(show: boolean): void {
    this.reconnectButton.hidden = !show;
  }

  sendCtrlAltDel(): void {
    this.rfb?.sendCtrlAltDel();
    this.rfb?.focus();
  }

  async paste(): Promise<void> {
    try {
      const text = await navigator.clipboard.readText();
      this.term?.paste(text);
      this.term?.focus();
    } catch {
      say(this.status, 'The browser did not allow reading the clipboard; press Ctrl+Shift+V in the terminal instead.', 'info');
    }
  }

  retryNow(): void {
    this.retries = 0;
    void this.connect();
  }

  private teardown(): void {
    const socket = this.socket;
    this.socket = null;
    this.rfb?.disconnect();
    this.rfb = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
    this.resizeObserver?.disconnect();
    this.term?.dispose();
    this.term = null;
    this.fit = null;
    this.screen.replaceChildren();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.retryTimer);
    this.teardown();
  }
}

/** Marks the screen once noVNC's canvas shows something other than black. */
function watchFirstFrame(screen: HTMLElement): void {
  const started = clickedAt;
  const check = () => {
    const canvas = screen.querySelector('canvas');
    const ctx = canvas?.getContext('2d', { willReadFrequently: true });
    if (canvas && ctx && canvas.width > 0) {
      const pixels = ctx.getImageData(0, 0, canvas.width, Math.min(canvas.height, 64)).data;
      for (let i = 0; i < pixels.length; i += 4) {
        if (pixels[i] || pixels[i + 1] || pixels[i + 2]) {
          screen.dataset.firstFrame = 'drawn';
          if (started !== null) screen.dataset.firstFrameMs = (performance.now() - started).toFixed(1);
          clickedAt = null;
          return;
        }
      }
    }
    if (screen.isConnected) requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}

/**
 * A phone's console: a button between fitting the screen and the VM's own size, and a button
 * that brings up the on-screen keyboard (a canvas cannot; a text field can), whose typing goes to
 * the VM.
 */
function vncControls(session: Session): HTMLElement[] {
  const zoom = h('button', { type: 'button', class: 'secondary', id: 'zoom', 'aria-pressed': String(session.fitted) }, 'Fit to screen');
  zoom.addEventListener('click', () => {
    session.fitToScreen(!session.fitted);
    zoom.setAttribute('aria-pressed', String(session.fitted));
  });
  const input = h('textarea', { id: 'vnc-keys', class: 'keyboard-input', 'aria-label': 'Type into the VM', autocapitalize: 'off', autocomplete: 'off', spellcheck: 'false' });
  input.addEventListener('input', () => {
    session.typeText(input.value);
    input.value = '';
  });
  input.addEventListener('keydown', (event) => {
    if (session.typeKey(event.key)) event.preventDefault();
  });
  const keyboard = h('button', { type: 'button', class: 'secondary', id: 'keyboard', onclick: () => input.focus() }, 'Keyboard');
  return [zoom, keyboard, input];
}

export async function consolePage(id: number, kind: Kind): Promise<void> {
  stopConsole();
  const screen = h('div', { class: `screen ${kind}`, id: 'console-screen', 'aria-label': kind === 'vnc' ? 'VM display' : 'VM terminal', role: 'application' });
  const status = notice();
  const frame = h('div', { class: 'console-frame' }, screen);
  const reconnect = h('button', { type: 'button', id: 'reconnect', hidden: true }, 'Reconnect');
  const fullscreen = h('button', { type: 'button', class: 'secondary', onclick: () => void frame.requestFullscreen?.() }, 'Fullscreen');
  const session = new Session(id, kind, screen, status, reconnect);
  const special = kind === 'vnc'
    ? h('button', { type: 'button', class: 'secondary', id: 'ctrl-alt-del', onclick: () => session.sendCtrlAltDel() }, 'Ctrl-Alt-Del')
    : h('button', { type: 'button', class: 'secondary', id: 'paste', onclick: () => void session.paste() }, 'Paste');
  const vncTools = kind === 'vnc' ? vncControls(session) : [];
  const back = h('a', { href: `/vms/${id}` }, '← VM');
  const title = h('h1', {}, kind === 'vnc' ? 'Console' : 'Terminal');
  const leave = h('p', { class: 'hint', id: 'console-keys' }, 'Shift+Esc leaves the screen for the buttons above; every other key goes to the VM.');
  // Tab belongs to the VM (shell completion), so a keyboard user needs another way out.
  screen.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || !event.shiftKey) return;
    event.preventDefault();
    event.stopPropagation();
    special.focus();
  }, true);
  mount(h('p', { class: 'crumbs' }, back), title, h('div', { class: 'actions toolbar' }, special, ...vncTools, fullscreen, reconnect), status, frame, leave);
  active = session;
  reconnect.addEventListener('click', () => session.retryNow());
  // The token request refuses a suspended or inactive VM in words; the name only decorates.
  void unwrap(api.GET('/vms/{id}', { params: { path: { id } } })).then((answer) => {
    const vm = 'service' in answer ? answer.service : answer;
    back.textContent = `← ${vm.name}`;
    title.textContent = `${vm.name}: ${kind === 'vnc' ? 'Console' : 'Terminal'}`;
  }).catch(() => undefined);
  await session.connect();
}
