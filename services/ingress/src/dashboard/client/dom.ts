/**
 * A small element builder. Text always goes in as text nodes (never as
 * HTML), so nothing an app or a client sent can become markup: with the
 * page's CSP (no inline script) this keeps the API key in sessionStorage
 * out of reach of a hostile body or header.
 */

export type Child = Node | string | number | null | undefined | false | readonly Child[];
type AttrValue = string | number | boolean | null | undefined | ((ev: Event) => void);

/** `h("a", { href: "/x", class: "link", onclick: fn }, "text", child)`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Record<string, AttrValue> | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(parent: Node, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else parent.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A status pill: the class gives its colour (styles.ts). */
export function badge(kind: string, text: string, attrs: Record<string, AttrValue> = {}): HTMLSpanElement {
  return h("span", { class: `badge badge-${kind}`, ...attrs }, text);
}
