"""Where `imaging.render` runs for the worker: inline, or in a pool of killable child processes.

    protocol   the Renderer interface the worker calls, and RendererCrashedError
    inline     InlineRenderer: `imaging.render` in the calling process
    pool       IsolatedRenderer: the same render in `processes` child processes
    process    one child process seen from the parent (spawn, kill, exit status)
    wire       what crosses the process boundary (JSON headers + raw payload frames)
    child      the child-process entry point (`main`)
    factory    build_renderer: the one THUMBNAIL_RENDER_ISOLATION selects

Nothing is imported here: a child process imports `rendering.child` and should load no more
than it needs.
"""
