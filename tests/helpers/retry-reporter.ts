// Names every test that passed only on its retry (vitest.config.ts `retry: 1`),
// at the end of the run, with the error of the try that failed, so a flaky
// test shows in the CI log instead of hiding behind the default reporter's
// summary.
import path from "node:path";
import type { Reporter, TestCase } from "vitest/node";

export default class RetryReporter implements Reporter {
  private readonly retried: string[] = [];

  onTestCaseResult(testCase: TestCase): void {
    // A test that failed every try is reported as failed already.
    const retries = testCase.diagnostic()?.retryCount ?? 0;
    const result = testCase.result();
    if (retries === 0 || result.state !== "passed") return;
    const file = path.relative(process.cwd(), testCase.module.moduleId);
    // A passed test keeps the errors of the tries that failed.
    const failed = (result.errors ?? []).map((e) => indent(e.stack ?? e.message, 6)).join("\n");
    this.retried.push(`${file} > ${testCase.fullName}: passed after ${retries} retr${retries === 1 ? "y" : "ies"}${failed ? `\n${failed}` : ""}`);
  }

  onTestRunEnd(): void {
    if (this.retried.length === 0) return;
    console.log(`\nRetried (a failure the retry hid; each is a flaky test to fix):\n${this.retried.map((r) => `  ${r}`).join("\n")}\n`);
  }
}

/** `text` indented by `n` spaces, at most 12 lines of it. */
function indent(text: string, n: number): string {
  return text
    .split("\n")
    .slice(0, 12)
    .map((l) => " ".repeat(n) + l)
    .join("\n");
}
