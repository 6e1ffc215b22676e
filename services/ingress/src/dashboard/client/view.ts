/** What a view of the dashboard gets from the shell (main.ts). */
export interface ViewContext {
  /** The signed-in key's project. */
  project: string;
  /** Goes to a dashboard path (history push, no reload). */
  navigate(path: string): void;
  /** The live indicator: streaming, reconnecting, or not used by this view. */
  setLive(live: boolean | null): void;
  /** A short message at the bottom of the page. */
  toast(message: string, kind?: "ok" | "error"): void;
}

/** Mounts a view into `root`; returns its unmount (closes streams, stops timers). */
export type View = (root: HTMLElement, ctx: ViewContext) => () => void;

/** Base path of the dashboard; every link of it starts so. */
export const BASE = "/dashboard";
