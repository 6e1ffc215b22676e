/**
 * The app's stored answer as the compatibility APIs show it: JSON when it
 * parses as JSON, else its text. Shared by the RunPod and Replicate shapes.
 */
export function answerValue(body: Uint8Array): unknown {
  const text = new TextDecoder().decode(body);
  if (text === "") return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Milliseconds between two optional times; undefined when either is missing. */
export function msBetween(from: Date | undefined, to: Date | undefined): number | undefined {
  return from && to ? Math.max(0, to.getTime() - from.getTime()) : undefined;
}
