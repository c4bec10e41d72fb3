// The pause (sandbox) binary of localhost/thumbnail-pause; no dependencies.
module thumbnail-platform/images/pause

go 1.24
