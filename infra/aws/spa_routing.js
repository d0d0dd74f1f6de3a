// SPA routing at the edge (CloudFront Function, viewer request, runtime cloudfront-js-2.0).
//
// A path whose last segment has no extension (`/`, `/orders/12`, `/settings/`) is a client-side route: the
// request goes to the origin as `/index.html` and the browser's router takes over. Everything else reaches
// the origin unchanged, so a missing file stays a 404 and a WAF block stays a 403 (a distribution-wide
// custom error response would have turned both into "200 + index.html").
// `/.well-known/...` is read by machines (security.txt, app links, ACME): never answered with the SPA.
// The query string lives in `request.querystring`, not in `uri`, and is passed on untouched.
// Deployed verbatim from this file (infra/aws/frontend.py); tests/infra/test_frontend.py runs it with node.
function handler(event) {
    var request = event.request;
    var uri = request.uri;
    if (uri.indexOf('/.well-known/') === 0) {
        return request;
    }
    var lastSegment = uri.substring(uri.lastIndexOf('/') + 1);
    if (lastSegment.indexOf('.') === -1) {
        request.uri = '/index.html';
    }
    return request;
}
