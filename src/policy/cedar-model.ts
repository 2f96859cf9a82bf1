/**
 * The Cedar entity model failclosed evaluates against, and the checks that a bundle's Cedar
 * schema follows it (see docs/policy.md "Cedar entity model"):
 *
 * - principal `Agent::"<client id>"`, member of `Tenant::"<its tenant>"`, attributes `{ roles: Set<String> }`;
 * - action `Action::"<tool name>"`, one per tool;
 * - resource `Tenant::"<tenant the call acts on>"`;
 * - context `{ params: <record mirroring the tool's JSON Schema>, risk: String, tainted: Bool }`.
 *
 * (SPEC §6 "Policy as code", OE-INV-005/008/013)
 */
import type { JsonObject, JsonValue } from '../kernel/index.js';

/** The part of a Cedar type that value conversion needs. */
export type CedarType =
  | { readonly kind: ScalarKind }
  | { readonly kind: 'set'; readonly element: CedarType }
  | { readonly kind: 'record'; readonly attrs: ReadonlyMap<string, CedarAttr> };

/** Kinds without inner structure. */
export type ScalarKind = 'long' | 'decimal' | 'string' | 'bool' | 'other';

/** One attribute of a record type. */
export interface CedarAttr {
  readonly type: CedarType;
  readonly required: boolean;
}

const BUILTINS: Readonly<Record<string, ScalarKind>> = {
  Long: 'long',
  String: 'string',
  Bool: 'bool',
  decimal: 'decimal',
  ipaddr: 'other',
  datetime: 'other',
  duration: 'other',
};

function builtin(name: string): ScalarKind | undefined {
  return Object.hasOwn(BUILTINS, name) ? BUILTINS[name] : undefined;
}

function obj(v: JsonValue | undefined): JsonObject | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

/** Resolves a type of `schemaToJsonWithResolvedTypes` output into a {@link CedarType}. */
export function resolveCedarType(t: JsonValue | undefined, common: JsonObject, depth = 0): CedarType {
  const o = obj(t);
  if (o === undefined || depth > 32) throw new Error('malformed Cedar schema type');
  const name = o['type'];
  if (typeof name !== 'string') throw new Error('malformed Cedar schema type');
  if (name === 'Set') return { kind: 'set', element: resolveCedarType(o['element'], common, depth + 1) };
  if (name === 'Record') {
    const attrs = new Map<string, CedarAttr>();
    for (const [k, v] of Object.entries(obj(o['attributes']) ?? {})) {
      attrs.set(k, {
        type: resolveCedarType(v, common, depth + 1),
        required: obj(v)?.['required'] !== false,
      });
    }
    return { kind: 'record', attrs };
  }
  if (name === 'Entity' || name === 'Extension') return { kind: 'other' };
  if (name.startsWith('__cedar::')) return { kind: builtin(name.slice(9)) ?? 'other' };
  if (Object.hasOwn(common, name)) return resolveCedarType(common[name], common, depth + 1);
  const kind = builtin(name);
  if (kind === undefined) throw new Error(`unknown Cedar type ${name}`);
  return { kind };
}

function sameList(a: JsonValue | undefined, expected: string): boolean {
  return Array.isArray(a) && a.length === 1 && a[0] === expected;
}

/** The checked model: each tool's `context.params` type. */
export interface CedarModel {
  readonly params: ReadonlyMap<string, CedarType>;
}

/**
 * Checks that a resolved-types Cedar schema (empty namespace only) declares the model above for
 * every tool, and that each action's `params` record names exactly the tool's JSON Schema
 * properties with the same required set. Throws a plain `Error` with a reason otherwise.
 */
export function checkCedarModel(
  schemaJson: JsonObject,
  tools: readonly { readonly name: string; readonly parameters: JsonObject }[],
): CedarModel {
  const names = Object.keys(schemaJson);
  const ns = obj(schemaJson['']);
  if (names.length !== 1 || ns === undefined)
    throw new Error('the Cedar schema must use the empty namespace only');
  const common = obj(ns['commonTypes']) ?? {};
  const entities = obj(ns['entityTypes']) ?? {};
  const actions = obj(ns['actions']) ?? {};
  if (obj(entities['Tenant']) === undefined) throw new Error('the Cedar schema must declare entity Tenant');
  const agent = obj(entities['Agent']);
  if (agent === undefined || !sameList(agent['memberOfTypes'], 'Tenant'))
    throw new Error('the Cedar schema must declare entity Agent in [Tenant]');
  const shape = resolveCedarType(agent['shape'], common);
  const roles = shape.kind === 'record' ? shape.attrs.get('roles') : undefined;
  if (
    shape.kind !== 'record' ||
    shape.attrs.size !== 1 ||
    roles === undefined ||
    !roles.required ||
    roles.type.kind !== 'set' ||
    roles.type.element.kind !== 'string'
  )
    throw new Error('entity Agent must have exactly the attributes { roles: Set<String> }');

  const params = new Map<string, CedarType>();
  for (const tool of tools) {
    const applies = obj(obj(actions[tool.name])?.['appliesTo']);
    if (applies === undefined) throw new Error(`the Cedar schema declares no action "${tool.name}"`);
    if (!sameList(applies['principalTypes'], 'Agent') || !sameList(applies['resourceTypes'], 'Tenant'))
      throw new Error(`action "${tool.name}" must apply to principal Agent and resource Tenant`);
    const ctx = resolveCedarType(applies['context'], common);
    if (ctx.kind !== 'record' || ctx.attrs.size !== 3)
      throw new Error(`action "${tool.name}": bad context shape`);
    const p = ctx.attrs.get('params');
    const risk = ctx.attrs.get('risk');
    const tainted = ctx.attrs.get('tainted');
    if (
      p?.type.kind !== 'record' ||
      !p.required ||
      risk?.type.kind !== 'string' ||
      tainted?.type.kind !== 'bool'
    )
      throw new Error(`action "${tool.name}": context must be { params: {…}, risk: String, tainted: Bool }`);
    if (!risk.required || !tainted.required)
      throw new Error(`action "${tool.name}": risk and tainted are required`);
    checkParamsMirror(tool.name, p.type.attrs, tool.parameters);
    params.set(tool.name, p.type);
  }
  return { params };
}

function checkParamsMirror(tool: string, attrs: ReadonlyMap<string, CedarAttr>, schema: JsonObject): void {
  const props = Object.keys(obj(schema['properties']) ?? {}).sort();
  const declared = [...attrs.keys()].sort();
  if (props.join('\u0000') !== declared.join('\u0000'))
    throw new Error(`action "${tool}": context.params must name exactly the JSON Schema properties`);
  const req = schema['required'];
  const required = new Set(Array.isArray(req) ? req.filter((r): r is string => typeof r === 'string') : []);
  for (const [name, attr] of attrs) {
    if (attr.required !== required.has(name))
      throw new Error(`action "${tool}": params.${name} is required in one schema and optional in the other`);
  }
}
