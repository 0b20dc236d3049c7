// A polled fragment whose session expired gets redirected to the login page; htmx
// would follow that redirect and swap the login form into the region. Go to the
// login page for real instead.
document.addEventListener("htmx:beforeSwap", (event) => {
  const xhr = event.detail.xhr;
  if (!xhr || !xhr.responseURL) return;
  const url = new URL(xhr.responseURL);
  if (url.pathname === "/login/" && url.pathname !== window.location.pathname) {
    event.detail.shouldSwap = false;
    url.searchParams.set("next", window.location.pathname + window.location.search);
    window.location.assign(url.toString());
  }
});
