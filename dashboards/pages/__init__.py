"""The dashboard's pages, one module each: Live, History, Alerts, Devices. Each page is a class built
with the session's `AppContext`, with a `layout` and an `update()` the app calls on a timer."""
