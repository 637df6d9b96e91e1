// Placement constraints: `attr == value`, `attr != value`, `attr in (a, b)`, `attr not in (a, b)`,
// `attr =~ regex`, `attr !~ regex`. An attribute is one of a node's own (`id`, `name`, `arch`,
// `os`) or a label, bare (`zone`) or explicit (`labels.zone`, which reaches a label that shares a
// built-in name). A node that lacks a label matches only the negative operators, as in Swarm.
// Parsed when a service is written (bad input is refused there) and again by the scheduler.
// Patterns are RE2's (re2js): matching takes linear time whatever the pattern, so no constraint
// can stall the leader, and the syntax does not change with the JavaScript engine's version.
import { RE2JS } from "re2js";
import { fail, ok, type Result } from "./errors.ts";
import { limits } from "./limits.ts";
import type { NodeInfo } from "./types.ts";

export type ConstraintOperator = "==" | "!=" | "in" | "not in" | "=~" | "!~";

export interface Constraint {
  text: string;
  attribute: string;
  operator: ConstraintOperator;
  values: string[];
  /** Set for `=~` and `!~`. */
  pattern: RE2JS | null;
}

const builtIns = ["id", "name", "arch", "os"] as const;
/** An attribute or label name: what a constraint and `spreadBy` may name. */
export const attributePattern = /^[A-Za-z_][A-Za-z0-9_.\-/]*$/;
const shape = /^\s*(\S+)\s+(==|!=|=~|!~|not\s+in|in)\s+(.+?)\s*$/;

/** The value of `attribute` on `node`, or null when the node has no such label. */
export function attributeOf(node: NodeInfo, attribute: string): string | null {
  if (attribute.startsWith("labels.")) return labelOf(node, attribute.slice(7));
  if ((builtIns as readonly string[]).includes(attribute)) {
    return String(node[attribute as (typeof builtIns)[number]]);
  }
  return labelOf(node, attribute);
}

/** Own labels only: `constructor` or `toString` is no label of any node. */
function labelOf(node: NodeInfo, key: string): string | null {
  return Object.hasOwn(node.labels, key) ? (node.labels[key] ?? null) : null;
}

export function parseConstraint(text: string): Result<Constraint> {
  if (text.length > limits.constraintLengthMax) {
    return fail("E_VALIDATION", `constraint longer than ${limits.constraintLengthMax} characters`);
  }
  const match = shape.exec(text);
  if (!match) {
    return fail(
      "E_VALIDATION",
      `constraint "${text}" is not "ATTRIBUTE OP VALUE" (OP one of ==, !=, in, not in, =~, !~)`,
    );
  }
  const [, attribute = "", rawOperator = "", rawValue = ""] = match;
  if (!attributePattern.test(attribute)) {
    return fail("E_VALIDATION", `constraint "${text}": "${attribute}" is not an attribute name`);
  }
  const operator = rawOperator.replace(/\s+/, " ") as ConstraintOperator;
  if (operator === "in" || operator === "not in")
    return listConstraint(text, attribute, operator, rawValue);
  if (operator === "=~" || operator === "!~")
    return regexConstraint(text, attribute, operator, rawValue);
  return ok({ text, attribute, operator, values: [unquote(rawValue)], pattern: null });
}

function listConstraint(
  text: string,
  attribute: string,
  operator: ConstraintOperator,
  raw: string,
): Result<Constraint> {
  const list = /^\((.*)\)$/.exec(raw);
  if (!list) return fail("E_VALIDATION", `constraint "${text}": write the values as (a, b)`);
  const values = (list[1] ?? "").split(",").map((value) => unquote(value.trim()));
  if (values.some((value) => value === "")) {
    return fail("E_VALIDATION", `constraint "${text}": an empty value in the list`);
  }
  if (values.length > limits.constraintValuesMax) {
    return fail(
      "E_VALIDATION",
      `constraint "${text}": more than ${limits.constraintValuesMax} values`,
    );
  }
  return ok({ text, attribute, operator, values, pattern: null });
}

function regexConstraint(
  text: string,
  attribute: string,
  operator: ConstraintOperator,
  raw: string,
): Result<Constraint> {
  try {
    const pattern = RE2JS.compile(unquote(raw));
    return ok({ text, attribute, operator, values: [unquote(raw)], pattern });
  } catch (error) {
    return fail("E_VALIDATION", `constraint "${text}": ${(error as Error).message}`);
  }
}

function unquote(value: string): string {
  const quoted = /^"(.*)"$|^'(.*)'$/.exec(value);
  return quoted ? (quoted[1] ?? quoted[2] ?? "") : value;
}

export function satisfies(node: NodeInfo, constraint: Constraint): boolean {
  const value = attributeOf(node, constraint.attribute);
  switch (constraint.operator) {
    case "==":
      return value !== null && value === constraint.values[0];
    case "!=":
      return value === null || value !== constraint.values[0];
    case "in":
      return value !== null && constraint.values.includes(value);
    case "not in":
      return value === null || !constraint.values.includes(value);
    case "=~":
      return value !== null && matches(constraint.pattern, value);
    case "!~":
      return value === null || !matches(constraint.pattern, value);
  }
}

/** Unanchored, as Nomad's `regexp`: `^` and `$` anchor where wanted. */
function matches(pattern: RE2JS | null, value: string): boolean {
  return pattern?.matcher(value).find() ?? false;
}

/**
 * Constraints parsed before, by text: the leader's scheduler reads every service's constraints on
 * each evaluation, and compiling a pattern each time would be wasted. A parsed constraint never
 * changes, so sharing it is safe.
 */
const parsedByText = new Map<string, Constraint>();

/** Parses a service's stored constraints; they were checked when written, so each parses. */
export function parseAll(texts: readonly string[]): Constraint[] {
  const parsed: Constraint[] = [];
  for (const text of texts) {
    let constraint = parsedByText.get(text);
    if (constraint === undefined) {
      const result = parseConstraint(text);
      if (!result.ok) continue;
      constraint = result.value;
      if (parsedByText.size >= limits.constraintsCachedMax) parsedByText.clear();
      parsedByText.set(text, constraint);
    }
    parsed.push(constraint);
  }
  return parsed;
}

export function satisfiesAll(node: NodeInfo, constraints: readonly Constraint[]): boolean {
  return constraints.every((constraint) => satisfies(node, constraint));
}
