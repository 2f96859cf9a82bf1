/**
 * Building the page. Every value is set with `textContent` (or an attribute from a fixed list):
 * nothing that came from an agent, a tool, a client or an approver is ever parsed as HTML.
 */

type Child = Node | string | null | undefined | false;

/** A new element with class, a few safe attributes and children (strings become text nodes). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: {
    readonly className?: string;
    readonly id?: string;
    readonly type?: string;
    readonly name?: string;
    readonly data?: Readonly<Record<string, string>>;
  } = {},
  ...children: readonly Child[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (props.className !== undefined) e.className = props.className;
  if (props.id !== undefined) e.id = props.id;
  if (props.type !== undefined) e.setAttribute('type', props.type);
  if (props.name !== undefined) e.setAttribute('name', props.name);
  for (const [k, v] of Object.entries(props.data ?? {})) e.dataset[k] = v;
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return e;
}

/** Text of any value: strings as they are, lists of strings joined, everything else as indented JSON. */
export function text(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === undefined) return '';
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.join(', ');
  return JSON.stringify(v, null, 2);
}

/** Replaces the children of `parent`. */
export function replace(parent: Element, ...children: readonly Node[]): void {
  parent.replaceChildren(...children);
}

/** A JSON object the gate answered (untrusted: read field by field). */
export type Obj = Record<string, unknown>;

/** `v` when it is a JSON object, else an empty one. */
export function obj(v: unknown): Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {};
}

/** `v` when it is a string, else ''. */
export function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
