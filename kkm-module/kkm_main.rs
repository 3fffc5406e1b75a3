// SPDX-License-Identifier: GPL-2.0

//! kkm: a KVM-ioctl-compatible device, `/dev/kkm`, for machines without
//! VT-x/SVM. It answers the subset of the KVM API that km uses, with KVM's
//! numbers, structs and errno conventions, so `kvm-ioctls` works on it.
//!
//! Object model: every open of `/dev/kkm` is stateless; `KVM_CREATE_VM`
//! returns a VM fd owning an `Arc<Vm>`; `KVM_CREATE_VCPU` returns a vCPU fd
//! owning an `Arc<Vcpu>`, which holds its own `Arc<Vm>`. Closing the last fd
//! (or process exit) frees everything; each fd pins the module.
//!
//! Guest execution (`KVM_RUN`): `guest_mode` enters the payload in ring 3 on
//! kkm's own descriptor tables and guest root (docs/kkm.md, "Guest mode").

use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

// The one definition of the ABI, shared with km (see kkm-uapi).
#[path = "../kkm-uapi/src/abi.rs"]
// The file is km's public API too: it has items the module does not use,
// and its `pub` reaches no further than this crate here.
#[allow(dead_code, unreachable_pub)]
mod abi;
mod cpuid;
mod fd;
mod fpu;
mod mmu;
mod page_table;
// The register checks, shared with kkm-uapi's tests (see kkm-uapi).
mod guest_mode;
#[path = "../kkm-uapi/src/guest_state.rs"]
#[allow(dead_code, unreachable_pub)]
mod guest_state;
mod nmi;
mod uapi;
mod vcpu;
mod vm;

module! {
    type: KkmModule,
    name: "kkm",
    authors: ["km project"],
    description: "KVM-compatible /dev/kkm running payloads in ring 3 without VT-x/SVM",
    license: "GPL",
    params: {
        // 512: above km's own thread limit (one vCPU per payload thread,
        // 508 with km's descriptor tables), so no payload runs out of
        // vCPUs on kkm where it would not on KVM.
        max_vcpus: u32 {
            default: 512,
            description: "Highest vCPU count per VM (1-4096); vCPU ids must be below it",
        },
        // 8192 = one slot per 64 MiB chunk of km's 512 GiB guest window
        // (docs/kkm.md).
        max_memslots: u32 {
            default: 8192,
            description: "Memory slots per VM (1-32764); slot ids must be below it",
        },
    },
}

/// Bounds of the module parameters, checked at load: x86 KVM's own limits
/// (KVM_MAX_VCPUS with MAXSMP, KVM_USER_MEM_SLOTS).
const MAX_VCPUS_LIMIT: u32 = 4096;
const MAX_MEMSLOTS_LIMIT: u32 = 32764;

pub(crate) fn max_vcpus() -> u32 {
    module_parameters::max_vcpus.value()
}

pub(crate) fn max_memslots() -> u32 {
    module_parameters::max_memslots.value()
}

#[pin_data]
struct KkmModule {
    // Dropped first: /dev/kkm goes away before what KVM_RUN uses.
    #[pin]
    _dev: MiscDeviceRegistration<Kkm>,
    _switcher: guest_mode::Registration,
    _nmi: nmi::Registration,
}

impl kernel::InPlaceModule for KkmModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // Parameters are checked before /dev/kkm exists, so a bad value
        // never gives user space a device to open.
        pin_init::pin_init_scope(|| {
            if !(1..=MAX_VCPUS_LIMIT).contains(&max_vcpus())
                || !(1..=MAX_MEMSLOTS_LIMIT).contains(&max_memslots())
            {
                pr_err!(
                    "max_vcpus must be 1-{}, max_memslots 1-{}\n",
                    MAX_VCPUS_LIMIT,
                    MAX_MEMSLOTS_LIMIT
                );
                return Err(EINVAL);
            }
            guest_mode::check_cpu()?;
            fpu::init()?;
            let nmi = nmi::Registration::new()?;
            let switcher = guest_mode::Registration::new()?;
            Ok(try_pin_init!(Self {
                _dev <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"kkm" }),
                _switcher: switcher,
                _nmi: nmi,
            }))
        })
    }
}

/// `KVM_CHECK_EXTENSION`, on `/dev/kkm` and on VM fds: nonzero only for
/// what the module really does today.
pub(crate) fn check_extension(cap: usize) -> isize {
    match u32::try_from(cap) {
        Ok(abi::KVM_CAP_USER_MEMORY)
        | Ok(abi::KVM_CAP_EXT_CPUID)
        | Ok(abi::KVM_CAP_IMMEDIATE_EXIT)
        | Ok(abi::KVM_CAP_XSAVE)
        | Ok(abi::KVM_CAP_XCRS) => 1,
        Ok(abi::KVM_CAP_NR_VCPUS) | Ok(abi::KVM_CAP_MAX_VCPUS) => max_vcpus() as isize,
        Ok(abi::KVM_CAP_NR_MEMSLOTS) => max_memslots() as isize,
        // As KVM: the set of register classes KVM_RUN can sync.
        Ok(abi::KVM_CAP_SYNC_REGS) => vcpu::SYNC_REGS_SUPPORTED as isize,
        _ => 0,
    }
}

/// The open `/dev/kkm` file: stateless, as `/dev/kvm` is.
struct Kkm;

#[vtable]
impl MiscDevice for Kkm {
    type Ptr = ();

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<()> {
        Ok(())
    }

    fn ioctl(_device: (), _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            abi::KVM_GET_API_VERSION => {
                no_arg(arg)?;
                Ok(abi::KVM_API_VERSION as isize)
            }
            abi::KVM_CREATE_VM => {
                // Machine type 0 is the only x86 type kkm knows.
                no_arg(arg)?;
                fd::install(vm::Vm::new()?)
            }
            abi::KVM_CHECK_EXTENSION => Ok(check_extension(arg)),
            abi::KVM_GET_VCPU_MMAP_SIZE => {
                no_arg(arg)?;
                Ok(vcpu::MMAP_SIZE as isize)
            }
            abi::KVM_GET_SUPPORTED_CPUID => cpuid::get_supported(arg).map(|()| 0),
            abi::KKM_GET_IDENTITY => {
                let id = abi::KkmIdentity {
                    magic: abi::KKM_IDENTITY_MAGIC,
                    abi_version: abi::KKM_ABI_VERSION,
                    max_vcpus: max_vcpus(),
                    flags: 0,
                };
                write_user(arg, &id).map(|()| 0)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// KVM rejects a nonzero argument on ioctls that take none; so does kkm.
pub(crate) fn no_arg(arg: usize) -> Result {
    if arg == 0 {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

/// Reads one ABI struct from the user address `arg`.
pub(crate) fn read_user<T: kernel::transmute::FromBytes>(arg: usize) -> Result<T> {
    UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>())
        .reader()
        .read()
}

/// Writes one ABI struct to the user address `arg`.
pub(crate) fn write_user<T: kernel::transmute::AsBytes>(arg: usize, value: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>())
        .writer()
        .write(value)
}
