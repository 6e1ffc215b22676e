import type { Logger } from "@longhaul/shared/logger";
import { decodeSettingsChanged, encodeSettingsChanged, type NatsConnection, type NatsNames } from "@longhaul/shared/nats";

/** What holds submit settings (adapters/pg/submit-settings.ts). */
interface SettingsHolder {
  forget(project: string): void;
  forgetAll(): void;
}

/**
 * Submit settings' changes between scheduler copies, on core NATS: the copy
 * that changed a project's apps or limits announces it, every copy (itself
 * included) forgets that project. After a broker outage a copy forgets
 * everything, since a notice may have been missed meanwhile.
 */
export function settingsNotices(nc: NatsConnection, names: NatsNames, log: Logger) {
  return {
    announce(project: string): void {
      nc.publish(names.settingsChanged, encodeSettingsChanged(project));
    },
    follow(holder: SettingsHolder): void {
      nc.subscribe(names.settingsChanged, {
        callback: (err, msg) => {
          if (err) return log.warn({ err }, "settings notices stopped");
          const project = decodeSettingsChanged(msg.data);
          if (project) holder.forget(project);
        },
      });
      void (async () => {
        for await (const s of nc.status()) if (s.type === "reconnect") holder.forgetAll();
      })().catch((err: unknown) => log.error({ err }, "nats status loop failed"));
    },
  };
}
