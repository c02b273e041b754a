//! libc's own definitions of the functions the shim interposes (`bind`,
//! `listen`, `close`, `syscall`, `shutdown`, the exec family): each found
//! once with `dlsym(RTLD_NEXT)`, cached without locks (two threads racing
//! both store the same address), typed, and called through one place.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use libc::c_int;

/// libc's definition of an interposed function of type `F` (a function
/// pointer type).
pub(crate) struct Real<F> {
    name: &'static std::ffi::CStr,
    ptr: AtomicUsize,
    ty: PhantomData<F>,
}

impl<F: Copy> Real<F> {
    /// # Safety
    /// `F` is the function pointer type of libc's `name`.
    pub(crate) const unsafe fn new(name: &'static std::ffi::CStr) -> Real<F> {
        Real {
            name,
            ptr: AtomicUsize::new(0),
            ty: PhantomData,
        }
    }

    /// The address, 0 when libc has none.
    pub(crate) fn address(&self) -> usize {
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

    /// libc's definition, `None` when it has none.
    pub(crate) fn get(&self) -> Option<F> {
        match self.address() {
            0 => None,
            // SAFETY: a non-null address of libc's definition of `name`,
            // whose type is `F` (the contract of `new`).
            f => Some(unsafe { std::mem::transmute_copy::<usize, F>(&f) }),
        }
    }

    /// What libc's definition, handed to `call`, returns; -1 with ENOSYS
    /// when libc has none.
    pub(crate) fn forward(&self, call: impl FnOnce(F) -> c_int) -> c_int {
        self.get().map_or_else(missing, call)
    }

    /// -1 when the shim `refused` the call (errno already set); else
    /// [`Real::forward`].
    pub(crate) fn forward_unless(&self, refused: bool, call: impl FnOnce(F) -> c_int) -> c_int {
        if refused {
            return -1;
        }
        self.forward(call)
    }
}

/// -1 with ENOSYS: libc has no such function (never on glibc).
pub(crate) fn missing() -> c_int {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = libc::ENOSYS };
    -1
}
