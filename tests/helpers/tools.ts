// Foreign programs the tests run (swaks, Postfix, OpenDKIM, python3, ...): whether one is installed. On a
// developer's machine a missing one skips its test with a warning; in CI (CI=true) it fails the test, since
// .ci/run installs every Debian package listed in .ci/packages.d/ and a skip there would hide a gap.

/** True when the program at `path` exists; under CI a missing one throws instead. */
export function haveTool(path: string, what = path): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    if (Deno.env.get("CI") === "true") {
      throw new Error(`${what} (${path}) is missing: CI installs the packages of .ci/packages.d/`);
    }
    console.warn(`skipped: ${what} (${path}) is not installed`);
    return false;
  }
}
