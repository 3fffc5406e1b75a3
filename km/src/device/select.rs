//! Choosing and opening the device: `--device`, `KM_DEVICE`, else /dev/kvm
//! then /dev/kkm. Failures become one line that says which device, why, and
//! what to do.

use std::ffi::CString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{Hypervisor, KvmDevice};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChoice {
    /// Named by `--device` or `KM_DEVICE`: only this one is tried.
    Explicit(PathBuf),
    /// /dev/kvm, then /dev/kkm.
    Auto,
}

impl DeviceChoice {
    /// `--device` wins over `KM_DEVICE`; an empty variable counts as unset.
    pub fn from_args(flag: Option<PathBuf>, env: Option<std::ffi::OsString>) -> Self {
        match flag.or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from)) {
            Some(p) => DeviceChoice::Explicit(p),
            None => DeviceChoice::Auto,
        }
    }
}

/// One line, for the user, on why a device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}: no such device; load KVM (modprobe kvm_intel or kvm_amd) or install kkm (scripts/install-kkm, then modprobe kkm)")]
    Missing(PathBuf),
    #[error("{0}: permission denied; add your user to the 'kvm' group (usermod -aG kvm $USER, then log in again) or run as root")]
    Permission(PathBuf),
    #[error("neither /dev/kvm nor /dev/kkm exists; load KVM (modprobe kvm_intel or kvm_amd) or install kkm (scripts/install-kkm, then modprobe kkm)")]
    NoneFound,
    #[error("{0}: {1}")]
    Other(PathBuf, String),
}

pub fn open(choice: &DeviceChoice) -> Result<Box<dyn Hypervisor>, OpenError> {
    match choice {
        DeviceChoice::Explicit(p) => open_path(p),
        DeviceChoice::Auto => {
            let kvm = Path::new("/dev/kvm");
            let kkm = Path::new("/dev/kkm");
            match open_path(kvm) {
                Ok(d) => Ok(d),
                Err(OpenError::Missing(_)) => open_path(kkm).map_err(|e| match e {
                    OpenError::Missing(_) => OpenError::NoneFound,
                    e => e,
                }),
                // /dev/kvm is there but unusable: kkm may still serve.
                Err(first) => open_path(kkm).map_err(|_| first),
            }
        }
    }
}

fn open_path(path: &Path) -> Result<Box<dyn Hypervisor>, OpenError> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| OpenError::Other(path.into(), "path contains a NUL byte".into()))?;
    KvmDevice::open(&c).map(|d| Box::new(d) as Box<dyn Hypervisor>).map_err(|e| match e.kind() {
        ErrorKind::NotFound => OpenError::Missing(path.into()),
        ErrorKind::PermissionDenied => OpenError::Permission(path.into()),
        _ => OpenError::Other(path.into(), e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_environment() {
        let c = DeviceChoice::from_args(Some("/dev/a".into()), Some("/dev/b".into()));
        assert_eq!(c, DeviceChoice::Explicit("/dev/a".into()));
    }

    #[test]
    fn environment_used_when_no_flag() {
        let c = DeviceChoice::from_args(None, Some("/dev/kkm".into()));
        assert_eq!(c, DeviceChoice::Explicit("/dev/kkm".into()));
    }

    #[test]
    fn empty_environment_means_auto() {
        assert_eq!(DeviceChoice::from_args(None, Some("".into())), DeviceChoice::Auto);
        assert_eq!(DeviceChoice::from_args(None, None), DeviceChoice::Auto);
    }

    #[test]
    fn errors_are_one_line_naming_the_device() {
        for e in [
            OpenError::Missing("/dev/x".into()),
            OpenError::Permission("/dev/x".into()),
            OpenError::Other("/dev/x".into(), "bad".into()),
        ] {
            let s = e.to_string();
            assert!(s.starts_with("/dev/x: "), "{s}");
            assert!(!s.contains('\n'));
        }
    }
}
