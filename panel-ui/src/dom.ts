// Tiny DOM helpers: element construction without innerHTML, dialogs and status messages.

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | boolean | number | EventListener | undefined>;

/** Creates an element; `on*` attributes become listeners, booleans toggle attributes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

/** Replaces the page content and moves focus to the first heading for screen readers. */
export function mount(...children: Child[]): HTMLElement {
  const main = document.getElementById('main') as HTMLElement;
  main.replaceChildren();
  for (const child of children) if (child) main.append(child);
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
  }
  return main;
}

/** A live region that announces status and errors. */
export function notice(kind: 'info' | 'error' | 'ok' = 'info', text = ''): HTMLElement {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status', hidden: text === '' }, text);
}

export function say(el: HTMLElement, text: string, kind?: 'info' | 'error' | 'ok'): void {
  el.textContent = text;
  el.hidden = text === '';
  if (kind) el.className = `notice ${kind}`;
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog(question: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' });
    const done = (answer: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    dialog.append(
      h('h2', { id: 'confirm-title' }, question),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'button', class: 'danger', 'data-confirm': true, onclick: () => done(true) }, confirmLabel),
      ),
    );
    dialog.addEventListener('cancel', () => done(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function table(headers: string[], rows: Child[][], caption?: string): HTMLElement {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c))))),
    ),
  );
}

export function field(label: string, input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement): HTMLElement {
  const id = input.id || `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

export function time(unixSecs: number | null | undefined): string {
  if (!unixSecs) return '';
  return new Date(unixSecs * 1000).toLocaleString();
}

export function badge(text: string): HTMLElement {
  return h('span', { class: `badge b-${text.replace(/[^a-z_-]/gi, '')}` }, text);
}

/** A byte count in the largest unit that keeps it readable. */
export function bytes(n: number | null | undefined): string {
  if (!n) return '';
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    const value = n / size;
    if (value >= 1) return `${value.toFixed(value % 1 && value < 10 ? 1 : 0)} ${unit}`;
  }
  return `${n} B`;
}

/** A JSON object as a short list of `key: value` lines that wrap instead of running off the page. */
export function details(value: unknown): HTMLElement | string {
  if (value === null || typeof value !== 'object') return value === null || value === undefined ? '' : String(value);
  const entries = Object.entries(value);
  if (entries.length === 0) return '';
  return h('dl', { class: 'details' }, ...entries.flatMap(([key, v]) => [
    h('dt', {}, key.replace(/_/g, ' ')),
    h('dd', {}, typeof v === 'string' ? v : JSON.stringify(v)),
  ]));
}
