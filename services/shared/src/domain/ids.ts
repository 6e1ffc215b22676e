/** A run id, a Handoff stream id: a UUID, any case. The one pattern every service checks ids with. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
