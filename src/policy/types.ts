/**
 * Types of the policy layer: bundle documents, tool specs, obligations and decisions.
 * See docs/policy.md. (SPEC §2 step 3, §6 "Policy as code", OE-INV-004/005/014)
 */
import type { Deny, JsonObject, JsonValue } from '../kernel/index.js';

/** The `format` member every bundle document carries. */
export const BUNDLE_FORMAT = 'failclosed.policy-bundle/v1';

/** Risk classes, lowest first. (OE-INV-014 "risk class") */
export type RiskClass = 'low' | 'medium' | 'high' | 'critical';

/** The risk classes in ascending order. */
export const RISK_CLASSES: readonly RiskClass[] = Object.freeze(['low', 'medium', 'high', 'critical']);

/**
 * How a tool is run. Only `type` is interpreted here; the Execution Layer owns the meaning of
 * every other member (`builtin` → `name`; `command` → `argv` template and limits; later types).
 * (OE-INV-012/024: command tools are argv templates, never shell strings)
 */
export type AdapterConfig = { readonly type: string } & { readonly [key: string]: JsonValue };

/** What approvers are shown before a high-impact call runs. (OE-INV-018) */
export interface ToolPreviewSpec {
  /** The action cannot be undone. */
  readonly irreversible: boolean;
  /** One line describing what the call changes. */
  readonly summary?: string;
  /** Adapter computing a dry run for approvers; semantics owned by the Execution Layer. */
  readonly dry_run?: AdapterConfig;
}

/** One tool of the catalog. `parameters` is a closed JSON Schema object. (OE-INV-004/005) */
export interface ToolSpec {
  readonly name: string;
  readonly description: string;
  readonly parameters: JsonObject;
  readonly risk: RiskClass;
  readonly adapter: AdapterConfig;
  readonly preview?: ToolPreviewSpec;
  /**
   * The tool returns text from outside (web pages, mail, files others wrote): a session that
   * receives it is marked tainted, and policy sees `context.tainted` on its later calls (OE-INV-013).
   */
  readonly untrusted_output?: boolean;
  /**
   * Who answers for the tool (a person or team): listed as its owner in the inventory of
   * execution-capable interfaces (docs/inventory.md, FC-INV-6); absent, the bundle's activator.
   */
  readonly owner?: string;
}

/** Bundle-wide settings: a closed set of members. */
export interface BundleSettings {
  readonly description?: string;
  /** How long an escalated decision may wait for approvals, in seconds. */
  readonly approval_ttl_seconds?: number;
}

/** A bundle document as stored and hashed. */
export interface PolicyBundleDocument {
  readonly format: typeof BUNDLE_FORMAT;
  readonly name: string;
  /** Policy id → Cedar text of exactly one static policy. */
  readonly policies: { readonly [id: string]: string };
  /** Cedar schema, human-readable syntax. */
  readonly schema: string;
  readonly tools: readonly ToolSpec[];
  readonly settings?: BundleSettings;
}

/**
 * A verified, immutable bundle: only {@link loadBundle} makes one, and only such values are
 * accepted by the catalog and the engine. `hash` is lower-hex SHA-256 of the canonical bytes.
 */
export interface LoadedBundle {
  readonly hash: string;
  readonly document: PolicyBundleDocument;
}

/**
 * What a decision demands before or while the call runs, merged over the policies that
 * determined it. (SPEC §6 "obligations … declared on the policies themselves", OE-INV-019/020)
 */
export interface Obligations {
  /** Distinct human approvals required (0 = none). */
  readonly approvals: number;
  /** An approval counts only from a holder of at least one of these roles; empty = any approver. */
  readonly approver_roles: readonly string[];
  /** A pre-execution preview must be shown to approvers. (OE-INV-018) */
  readonly preview: boolean;
  /** Spend cap for this call in USD as a decimal string, or null when none is declared. */
  readonly max_cost_usd: string | null;
}

/** Fields every policy decision carries into the decision record. (OE-INV-014) */
export interface PolicyDecisionFields {
  /** Hash of the bundle that decided. */
  readonly bundle_hash: string;
  /** Ids of the policies that determined the decision, sorted; empty for a default deny. */
  readonly rules_fired: readonly string[];
  readonly obligations: Obligations;
  readonly rationale: string;
  readonly risk: RiskClass;
}

/** Allowed outright, or allowed once obligations (approvals, preview) are met. */
export interface PolicyPermit extends PolicyDecisionFields {
  readonly outcome: 'allow' | 'escalate';
}

/**
 * Denied by policy (`ERR_POLICY_DENY`) or because evaluation reported errors
 * (`ERR_POLICY_ERROR`); also a {@link Deny}.
 */
export interface PolicyDenial extends PolicyDecisionFields, Deny {
  readonly outcome: 'deny';
  readonly code: 'ERR_POLICY_DENY' | 'ERR_POLICY_ERROR';
}

/** The outcome of policy evaluation. (SPEC §2 step 3) */
export type PolicyDecision = PolicyPermit | PolicyDenial;

/** The calling agent, as authenticated by the Gate. */
export interface PrincipalInput {
  readonly id: string;
  /** The tenant the agent belongs to. */
  readonly tenant: string;
  readonly roles?: readonly string[];
}

/** One proposed call to evaluate. */
export interface EvaluationInput {
  readonly principal: PrincipalInput;
  /** Tenant the call acts on. */
  readonly tenant: string;
  readonly tool: string;
  readonly params: JsonValue;
  /** The session has seen untrusted tool output. (OE-INV-013) */
  readonly tainted: boolean;
  /**
   * When the caller stops waiting for the answer, on the `sharedNow` timeline (`cedar-thread.ts`): the Cedar
   * thread does not evaluate a call it reaches after that (its caller has denied it already).
   * Never part of what Cedar sees.
   */
  readonly expiresAt?: number;
}
