// The site's service worker. CleverTap's own (sw_webpush.js) imports a script from a CDN, which nothing here
// can reach; registering for push needs only a worker to be active.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
