# OpenBao server configuration for bench/http/run, used together with
# `bao server -dev` (in-memory storage, a root token, KV v2 mounted at
# secret/). OpenBao takes audit devices from its configuration file: this one
# writes every request and response to a file, as Keyward's access log
# records every render. The run script substitutes @AUDIT_LOG@ with a path
# in its temporary folder.
audit "file" "bench" {
  options {
    file_path = "@AUDIT_LOG@"
  }
}
