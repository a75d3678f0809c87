// mimalloc rather than the system allocator: a plugin call allocates and
// frees a few hundred small objects (store, instance, WASI context, lifted
// strings), and glibc's malloc was a tenth of a warm call's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keyward::cli::run()
}
