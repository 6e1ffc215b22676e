import { UUID } from "@longhaul/shared/domain";
import { LonghaulError } from "@longhaul/shared/errors";


/** Handoff stream ids: UUIDs, at most a few hundred (an invoker names those of the last two minutes). */
export function checkStreamIds(ids: string[]): string[] {
  if (ids.length > 1000) throw new LonghaulError("invalid_argument", "ended_streams: at most 1000");
  for (const id of ids) if (!UUID.test(id)) throw new LonghaulError("invalid_argument", `ended_streams: ${JSON.stringify(id.slice(0, 40))} is not a UUID`);
  return ids;
}
