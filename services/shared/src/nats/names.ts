/**
 * Names of every JetStream stream, consumer and subject of one mesh, derived
 * from one prefix so that several meshes (or test files) share a server.
 */
export interface NatsNames {
  dispatchStream: string;
  eventsStream: string;
  invokerConsumer: string;
  notifierConsumer: string;
  /** KV bucket of the leases that pick one copy for once-per-mesh work (its stream: `KV_<bucket>`). */
  leaseBucket: string;
  /** Work-queue subject of a run to start: `<p>.dispatch.<project>.<app>`. */
  dispatch(project: string, app: string): string;
  dispatchAll: string;
  /** A run has ended: `<p>.run.finished.<project>`. */
  finished(project: string): string;
  finishedAll: string;
  /** Core NATS broadcast asking the invoker holding a run to abort it. */
  cancel: string;
  /** Core NATS broadcast: a project's limits or apps changed (schedulers drop their copy). */
  settingsChanged: string;
  /**
   * Core NATS notice that a run changed, for watchers:
   * `<p>.run.changed.<project>.<run_id>`, payload `{"run_id","status"}`.
   */
  runChanged(project: string, runId: string): string;
  /** Every notice of one run, whatever its project: `<p>.run.changed.*.<run_id>`. */
  runChangedOfRun(runId: string): string;
  /** Every notice of one project's runs: `<p>.run.changed.<project>.>`. */
  runChangedOfProject(project: string): string;
}

export function natsNames(prefix: string): NatsNames {
  const upper = prefix.toUpperCase();
  return {
    dispatchStream: `${upper}_DISPATCH`,
    eventsStream: `${upper}_EVENTS`,
    invokerConsumer: "invoker",
    notifierConsumer: "notifier",
    leaseBucket: `${upper}_LEASES`,
    dispatch: (project, app) => `${prefix}.dispatch.${project}.${app}`,
    dispatchAll: `${prefix}.dispatch.>`,
    finished: (project) => `${prefix}.run.finished.${project}`,
    finishedAll: `${prefix}.run.finished.>`,
    cancel: `${prefix}.control.cancel`,
    settingsChanged: `${prefix}.control.settings`,
    runChanged: (project, runId) => `${prefix}.run.changed.${project}.${runId}`,
    runChangedOfRun: (runId) => `${prefix}.run.changed.*.${runId}`,
    runChangedOfProject: (project) => `${prefix}.run.changed.${project}.>`,
  };
}
