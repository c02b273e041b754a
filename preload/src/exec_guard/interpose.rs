//! The interposed exec functions: each asks the guard, then calls libc's
//! own definition (found with `dlsym(RTLD_NEXT)` when the shim loads).

use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_char, c_int};

use super::os::{set_errno, CPath};
use super::{refuse, refuse_search};

/// libc's definition of an interposed function, found once.
struct Real {
    name: &'static std::ffi::CStr,
    ptr: AtomicUsize,
}

impl Real {
    const fn new(name: &'static std::ffi::CStr) -> Real {
        Real {
            name,
            ptr: AtomicUsize::new(0),
        }
    }

    /// The address, 0 when libc has none.
    fn get(&self) -> usize {
        let p = self.ptr.load(Ordering::Relaxed);
        if p != 0 {
            return p;
        }
        // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name is the
        // documented way to find the next definition of a symbol.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) } as usize;
        self.ptr.store(p, Ordering::Relaxed);
        p
    }
}

static REAL_EXECVE: Real = Real::new(c"execve");
static REAL_EXECV: Real = Real::new(c"execv");
static REAL_EXECVP: Real = Real::new(c"execvp");
static REAL_EXECVPE: Real = Real::new(c"execvpe");
static REAL_FEXECVE: Real = Real::new(c"fexecve");

/// Resolved when the shim is loaded, so an exec from a `vfork` child (dash
/// runs its commands so) never enters the dynamic linker.
#[used]
#[link_section = ".init_array"]
static RESOLVE_AT_LOAD: extern "C" fn() = resolve_at_load;

extern "C" fn resolve_at_load() {
    for real in [
        &REAL_EXECVE,
        &REAL_EXECV,
        &REAL_EXECVP,
        &REAL_EXECVPE,
        &REAL_FEXECVE,
    ] {
        real.get();
    }
}

type Argv = *const *const c_char;
type ExecveFn = unsafe extern "C" fn(*const c_char, Argv, Argv) -> c_int;
type ExecvFn = unsafe extern "C" fn(*const c_char, Argv) -> c_int;
type FexecveFn = unsafe extern "C" fn(c_int, Argv, Argv) -> c_int;

extern "C" {
    static mut environ: Argv;
}

/// The process's environment, as `execv` and `execvp` pass it on.
fn current_env() -> Argv {
    // SAFETY: reading the pointer value of libc's `environ`.
    unsafe { std::ptr::addr_of!(environ).read() }
}

/// -1 with ENOSYS: libc has no such function (never on glibc).
fn missing() -> c_int {
    set_errno(libc::ENOSYS);
    -1
}

/// The interposed `execve()`: see the module's diagram.
///
/// # Safety
/// The arguments of execve(2).
#[no_mangle]
pub unsafe extern "C" fn execve(path: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the caller's arguments, as execve(2) takes them.
    if unsafe { refuse(path, envp) } {
        return -1;
    }
    match REAL_EXECVE.get() {
        0 => missing(),
        // SAFETY: the address of libc's execve; forwarding the caller's arguments.
        f => unsafe { std::mem::transmute::<usize, ExecveFn>(f)(path, argv, envp) },
    }
}

/// The interposed `execv()`.
///
/// # Safety
/// The arguments of execv(3).
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: Argv) -> c_int {
    // SAFETY: the caller's path; libc's own environment.
    if unsafe { refuse(path, current_env()) } {
        return -1;
    }
    match REAL_EXECV.get() {
        0 => missing(),
        // SAFETY: the address of libc's execv; forwarding the caller's arguments.
        f => unsafe { std::mem::transmute::<usize, ExecvFn>(f)(path, argv) },
    }
}

/// The interposed `execvp()`.
///
/// # Safety
/// The arguments of execvp(3).
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: Argv) -> c_int {
    // SAFETY: the caller's file name; libc's own environment.
    if unsafe { refuse_search(file, current_env()) } {
        return -1;
    }
    match REAL_EXECVP.get() {
        0 => missing(),
        // SAFETY: the address of libc's execvp; forwarding the caller's arguments.
        f => unsafe { std::mem::transmute::<usize, ExecvFn>(f)(file, argv) },
    }
}

/// The interposed `execvpe()`.
///
/// # Safety
/// The arguments of execvpe(3).
#[no_mangle]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the caller's arguments.
    if unsafe { refuse_search(file, envp) } {
        return -1;
    }
    match REAL_EXECVPE.get() {
        0 => missing(),
        // SAFETY: the address of libc's execvpe; forwarding the caller's arguments.
        f => unsafe { std::mem::transmute::<usize, ExecveFn>(f)(file, argv, envp) },
    }
}

/// The interposed `fexecve()`: the program is judged through
/// `/proc/self/fd/N`.
///
/// # Safety
/// The arguments of fexecve(3).
#[no_mangle]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: Argv, envp: Argv) -> c_int {
    let mut path = CPath::<32>::new();
    let mut digits = [0u8; 12];
    let n = decimal(fd, &mut digits);
    // SAFETY: path is NUL-terminated; the caller's envp.
    if path.set(&[b"/proc/self/fd/", &digits[..n]]) && unsafe { refuse(path.as_ptr(), envp) } {
        return -1;
    }
    match REAL_FEXECVE.get() {
        0 => missing(),
        // SAFETY: the address of libc's fexecve; forwarding the caller's arguments.
        f => unsafe { std::mem::transmute::<usize, FexecveFn>(f)(fd, argv, envp) },
    }
}

/// `v` in decimal into `out`; the length written (0 for a negative `v`).
fn decimal(v: c_int, out: &mut [u8; 12]) -> usize {
    let Ok(mut v) = u32::try_from(v) else {
        return 0;
    };
    let mut tmp = [0u8; 12];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = tmp[n - 1 - i];
    }
    n
}
