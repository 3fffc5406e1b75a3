// SPDX-License-Identifier: GPL-2.0

//! VM and vCPU file descriptors: anonymous-inode files whose private data is
//! an `Arc<T>`. The kernel crate has no abstraction for these yet, so this is
//! the one place that builds `file_operations` by hand.

use core::marker::PhantomData;
use kernel::{
    bindings,
    ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void},
    mm::virt::VmaNew,
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::ForeignOwnable,
};

extern "C" {
    // fs/anon_inodes.c, EXPORT_SYMBOL_GPL; its header is not in the kernel
    // crate's bindings. `fops` is a `struct file_operations *`, declared
    // opaque here because the generated struct is not FFI-safe to rustc.
    fn anon_inode_getfd(
        name: *const c_char,
        fops: *const c_void,
        priv_: *mut c_void,
        flags: c_int,
    ) -> c_int;
}

/// An object behind a kkm file descriptor.
pub(crate) trait FdObject: Send + Sync + Sized + 'static {
    /// Name of the anonymous inode, shown in /proc/PID/fd.
    const NAME: &'static CStr;

    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize>;

    /// Called for `mmap` of the fd; `vma` is still being set up.
    fn mmap(&self, vma: &VmaNew) -> Result;
}

/// Creates a file for `obj` and returns its new fd (`O_RDWR | O_CLOEXEC`,
/// as KVM's fds). The file owns one reference to `obj` until its release.
pub(crate) fn install<T: FdObject>(obj: Arc<T>) -> Result<isize> {
    let ptr = obj.into_foreign();
    // SAFETY: `T::NAME` is a NUL-terminated string and the vtable a static
    // whose `owner` field makes the new file pin this module; `ptr` is a
    // valid `Arc<T>` reference that the file's `release` takes back (see
    // `FdVTable::release`).
    let fd = unsafe {
        anon_inode_getfd(
            T::NAME.as_char_ptr(),
            core::ptr::from_ref(FdVTable::<T>::vtable()).cast(),
            ptr,
            (bindings::O_RDWR | bindings::O_CLOEXEC) as c_int,
        )
    };
    if fd < 0 {
        // SAFETY: on failure anon_inode_getfd created no file (it reserves
        // the fd before it creates the file, and creating the file is the last
        // step that can fail), so nothing else saw `ptr`: the reference taken
        // by `into_foreign` above is still ours to drop.
        drop(unsafe { Arc::<T>::from_foreign(ptr) });
        return Err(Error::from_errno(fd));
    }
    Ok(fd as isize)
}

struct FdVTable<T>(PhantomData<T>);

impl<T: FdObject> FdVTable<T> {
    const VTABLE: bindings::file_operations = bindings::file_operations {
        owner: kernel::module::this_module::<crate::LocalModule>().as_ptr(),
        unlocked_ioctl: Some(Self::ioctl),
        mmap: Some(Self::mmap),
        release: Some(Self::release),
        ..pin_init::zeroed()
    };

    /// The file's pointer to its operations outlives any call: the
    /// `'static` return type makes the compiler promote `VTABLE` to a static
    /// (or refuse to compile), never a temporary.
    const fn vtable() -> &'static bindings::file_operations {
        &Self::VTABLE
    }

    /// Borrows the object of a file made by `install`.
    ///
    /// # Safety
    ///
    /// `file` must be a file created by `install::<T>` whose `release` has
    /// not run, and the borrow must end before `release` can run.
    unsafe fn object<'a>(file: *mut bindings::file) -> <Arc<T> as ForeignOwnable>::Borrowed<'a> {
        // SAFETY: per the function's contract `file` is valid and its
        // `private_data` is the pointer that `install` got from
        // `Arc::into_foreign`, still owned by the file.
        unsafe { <Arc<T> as ForeignOwnable>::borrow((*file).private_data) }
    }

    /// # Safety
    ///
    /// Called by the VFS with a file made by `install::<T>`.
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: the VFS holds a reference to `file` for the whole ioctl
        // call, so `release` cannot run before this borrow ends.
        let obj = unsafe { Self::object(file) };
        match T::ioctl(obj, cmd, arg) {
            Ok(ret) => ret as c_long,
            Err(err) => err.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS with a file made by `install::<T>` and a VMA that
    /// is being mapped from it.
    unsafe extern "C" fn mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: mmap_region() holds a reference to `file` during this call.
        let obj = unsafe { Self::object(file) };
        // SAFETY: the VFS passes a VMA undergoing its initial setup, which is
        // what `VmaNew` stands for, for the duration of this call.
        let vma = unsafe { VmaNew::from_raw(vma) };
        match obj.mmap(vma) {
            Ok(()) => 0,
            Err(err) => err.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFS once, when the last reference to a file made by
    /// `install::<T>` is dropped.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: `release` runs once, after every other file operation has
        // returned, so the reference `install` handed to the file is ours now.
        drop(unsafe { Arc::<T>::from_foreign((*file).private_data) });
        0
    }
}
