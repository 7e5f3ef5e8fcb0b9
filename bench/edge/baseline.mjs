// Baseline worker of the edge benchmark: one Cache API lookup per request and
// nothing else, so it shows what workerd's cache alone costs on this machine.
//
// GET returns the entry stored under the request URL, or 404 when there is none.
// PUT stores the request body under the request URL, which the benchmark uses
// once to prime the entry before it measures GET.
export default {
  async fetch(request) {
    if (request.method === "PUT") {
      const body = await request.arrayBuffer();
      const stored = new Response(body, {
        headers: {
          "content-type": request.headers.get("content-type") ?? "application/json",
          // The Cache API stores only responses it may keep; an hour outlasts any run.
          "cache-control": "public, max-age=3600",
        },
      });
      await caches.default.put(request.url, stored);
      return new Response(null, { status: 204 });
    }
    const match = await caches.default.match(request.url);
    return match ?? new Response("not cached\n", { status: 404 });
  },
};
