// xterm.js styles itself at run time: `<style>` elements for its theme, cell size and scrollbar,
// and a `style` attribute on every cell painted in 24-bit colour (a selection, true-colour text).
// The daemon's Content-Security-Policy (`style-src 'self'`, no 'unsafe-inline') refuses both, and
// the terminal then lays out wrongly. Constructable stylesheets and the CSSOM are not inline
// styles, so xterm gets those instead and the policy stays as strict as it is.
import type { Terminal } from '@xterm/xterm';

/**
 * `term.open(parent)`, with xterm's runtime styles carried by the CSSOM. Its stylesheets are
 * removed with the terminal (`term.dispose()`).
 */
export function openTerminal(term: Terminal, parent: HTMLElement): void {
  const doc = parent.ownerDocument;
  const create = doc.createElement;
  // xterm creates its `<style>` elements while opening (renderer and viewport) and rewrites their
  // text later; only those few elements are made here, then `document` is itself again.
  doc.createElement = function createElement(this: Document, tag: string, options?: ElementCreationOptions) {
    if (tag.toLowerCase() !== 'style') return create.call(this, tag, options);
    return sheetBacked(doc, create.call(this, 'template'));
  } as typeof doc.createElement;
  try {
    term.open(parent);
  } finally {
    delete (doc as { createElement?: unknown }).createElement;
    if (doc.createElement !== create) doc.createElement = create;
  }
  cellStylesThroughCssom(term);
}

/**
 * What xterm gets for a `<style>` element: an inert `<template>` (even an empty `<style>` is an
 * inline style to the CSP) whose text becomes an adopted stylesheet, removed with the element.
 * xterm only appends it, sets its `textContent` and removes it.
 */
function sheetBacked(doc: Document, element: HTMLElement): HTMLElement {
  const sheet = new CSSStyleSheet();
  doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
  let text = '';
  Object.defineProperty(element, 'textContent', {
    configurable: true,
    get: () => text,
    set: (value: string | null) => {
      text = value ?? '';
      sheet.replaceSync(text);
    },
  });
  const remove = element.remove.bind(element);
  element.remove = () => {
    doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
    remove();
  };
  return element;
}

/** The DOM renderer's row factory, which writes a cell's 24-bit colours as a `style` attribute. */
interface RowFactory {
  _addStyle(element: HTMLElement, style: string): void;
}

/**
 * Makes the DOM renderer set a cell's colours through `element.style` (the CSSOM) instead of
 * `setAttribute('style', …)`. This reaches into xterm's internals (checked by the browser tests,
 * which select text and fail on any CSP violation); if they have moved, cells in 24-bit colour lose
 * that colour and the console says so.
 */
function cellStylesThroughCssom(term: Terminal): void {
  const core = (term as unknown as { _core?: { _renderService?: { _renderer?: { value?: { _rowFactory?: Partial<RowFactory> } } } } })._core;
  const factory = core?._renderService?._renderer?.value?._rowFactory;
  if (!factory || typeof factory._addStyle !== 'function') {
    console.warn('xterm.js internals changed: cells in 24-bit colour are refused by the Content-Security-Policy');
    return;
  }
  factory._addStyle = (element: HTMLElement, style: string) => {
    element.style.cssText = `${element.style.cssText}${style};`;
  };
}
