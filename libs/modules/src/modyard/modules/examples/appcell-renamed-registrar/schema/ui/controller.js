// Backend UI module of the look-alike cell: the console loads it under /ui/registrar.
export function routes(router) {
  router.get("/status", async (request) => request.cell.call("fetch", { domain: request.query.domain }));
}
