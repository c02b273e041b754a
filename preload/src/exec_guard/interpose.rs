//! The interposed exec functions: each asks the guard, then calls libc's
//! own definition (found with `dlsym(RTLD_NEXT)` when the shim loads).

use libc::{c_char, c_int};

use super::os::CPath;
use super::{refuse, refuse_search};
use crate::real::Real;

// SAFETY: the C prototype of execve(2).
static REAL_EXECVE: Real<ExecveFn> = unsafe { Real::new(c"execve") };
// SAFETY: the C prototype of execv(3).
static REAL_EXECV: Real<ExecvFn> = unsafe { Real::new(c"execv") };
// SAFETY: the C prototype of execvp(3).
static REAL_EXECVP: Real<ExecvFn> = unsafe { Real::new(c"execvp") };
// SAFETY: the C prototype of execvpe(3).
static REAL_EXECVPE: Real<ExecveFn> = unsafe { Real::new(c"execvpe") };
// SAFETY: the C prototype of fexecve(3).
static REAL_FEXECVE: Real<FexecveFn> = unsafe { Real::new(c"fexecve") };

/// Resolved when the shim is loaded, so an exec from a `vfork` child (dash
/// runs its commands so) never enters the dynamic linker.
#[used]
#[link_section = ".init_array"]
static RESOLVE_AT_LOAD: extern "C" fn() = resolve_at_load;

extern "C" fn resolve_at_load() {
    REAL_EXECVE.address();
    REAL_EXECV.address();
    REAL_EXECVP.address();
    REAL_EXECVPE.address();
    REAL_FEXECVE.address();
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

/// The interposed `execve()`: see the module's diagram.
///
/// # Safety
/// The arguments of execve(2).
#[no_mangle]
pub unsafe extern "C" fn execve(path: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the caller's arguments, as execve(2) takes them, judged and
    // forwarded to libc's execve.
    unsafe { REAL_EXECVE.forward_unless(refuse(path, envp), |f| f(path, argv, envp)) }
}

/// The interposed `execv()`.
///
/// # Safety
/// The arguments of execv(3).
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: Argv) -> c_int {
    // SAFETY: the caller's path (judged with libc's own environment) and
    // arguments, forwarded to libc's execv.
    unsafe { REAL_EXECV.forward_unless(refuse(path, current_env()), |f| f(path, argv)) }
}

/// The interposed `execvp()`.
///
/// # Safety
/// The arguments of execvp(3).
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: Argv) -> c_int {
    // SAFETY: the caller's file name (judged with libc's own environment)
    // and arguments, forwarded to libc's execvp.
    unsafe { REAL_EXECVP.forward_unless(refuse_search(file, current_env()), |f| f(file, argv)) }
}

/// The interposed `execvpe()`.
///
/// # Safety
/// The arguments of execvpe(3).
#[no_mangle]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the caller's arguments, judged and forwarded to libc's
    // execvpe.
    unsafe { REAL_EXECVPE.forward_unless(refuse_search(file, envp), |f| f(file, argv, envp)) }
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
    // SAFETY: path is NUL-terminated; the caller's envp and arguments,
    // forwarded to libc's fexecve.
    unsafe {
        let refused = path.set(&[b"/proc/self/fd/", &digits[..n]]) && refuse(path.as_ptr(), envp);
        REAL_FEXECVE.forward_unless(refused, |f| f(fd, argv, envp))
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
