"""The console and the portals: server-rendered pages for people, at `/ui/`.

One application serves three audiences by the signed-in user's role: the admin console, the partner portal
(`/ui/p/`) and the advertiser portal (`/ui/a/`). Every page reads through the same services as the API,
with the viewer's tenant scope, so it shows exactly that role's view. `routing` assembles the routes and
answers failures as pages, `session` signs people in and checks every form's CSRF token, `rendering`
turns templates into pages with the security headers, `dates` reads the days a page shows (local days of the
program's time zone), and the page modules hold one area each.
"""
