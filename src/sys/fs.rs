//! Files under a directory: `openat2(RESOLVE_BENEATH)` (the kernel confines
//! a path to a directory while it resolves it, symlinks included), a probe
//! for kernels without it, and a directory listing from an open fd.

use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::OnceLock;

use super::{retry, sys_err};

/// `struct open_how` (linux/openat2.h); libc's is `non_exhaustive`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Flags every file under a served root is opened with: read-only, and
/// non-blocking so that a FIFO never waits for a writer (it is refused
/// after the `fstat`; nothing is ever read from it), no controlling tty.
const OPEN_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn openat2(dir: libc::c_int, path: &CStr, how: &OpenHow) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated and `how` is a valid open_how of the
    // size passed; the kernel reads both during the call only.
    let fd = retry("openat2", || unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })?;
    // SAFETY: a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Whether this kernel has `openat2` (Linux 5.6; a seccomp filter may also
/// refuse it). Probed once.
pub fn openat2_available() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        let how = OpenHow {
            flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH,
        };
        match openat2(libc::AT_FDCWD, c".", &how) {
            Ok(_) => true,
            Err(e) => !matches!(super::errno_of(&e), Some(libc::ENOSYS | libc::EPERM)),
        }
    })
}

/// Open `path` (relative) for reading, resolved beneath `dir` by the
/// kernel: `..` or a symlink (absolute, or relative) that would leave `dir`
/// fails with `EXDEV`, and magic links (`/proc/*/fd`) fail with `ELOOP`.
/// Opened non-blocking, so a FIFO never waits for a writer.
pub fn open_beneath(dir: BorrowedFd<'_>, path: &Path) -> io::Result<File> {
    let how = OpenHow {
        flags: OPEN_FLAGS as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    openat2(dir.as_raw_fd(), &cstring(path)?, &how).map(File::from)
}

/// Open `path` for reading with the same flags as [`open_beneath`], without
/// confinement (for kernels without `openat2`, after the caller checked the
/// path).
pub fn open_plain(path: &Path) -> io::Result<File> {
    let c = cstring(path)?;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    let fd = retry("open", || unsafe { libc::open(c.as_ptr(), OPEN_FLAGS) })?;
    // SAFETY: a fresh fd that we now own.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Append up to `len` bytes of `file` from `offset` to `out` (`pread`,
/// repeated until `len` bytes or the end of the file), without zeroing the
/// room first. Returns how many bytes were appended.
pub fn pread_append(file: &File, out: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<usize> {
    out.reserve(len);
    let mut done = 0;
    while done < len {
        let spare = &mut out.spare_capacity_mut()[..len - done];
        // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by
        // `out`; pread writes at most that many and returns the count.
        let n = retry("pread", || unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                (offset + done as u64) as libc::off_t,
            )
        })? as usize;
        if n == 0 {
            break;
        }
        // SAFETY: pread initialized the first `n` bytes of the spare room.
        unsafe { out.set_len(out.len() + n) };
        done += n;
    }
    Ok(done)
}

/// Create a FIFO (named pipe) at `path`, mode 0644.
pub fn make_fifo(path: &Path) -> io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    retry("mkfifo", || unsafe { libc::mkfifo(c.as_ptr(), 0o644) }).map(drop)
}

/// One name in a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name (never `.` or `..`).
    pub name: OsString,
    /// Whether it is a directory itself (symlinks are not followed).
    pub is_dir: bool,
}

/// The entries of the open directory `dir` (its fd is duplicated; `dir`
/// keeps its own), in the order the file system gives them.
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEntry>> {
    let dup = dir.try_clone_to_owned()?;
    // SAFETY: `dup` is an open directory fd we own; fdopendir takes it over
    // on success (closedir below closes it), and we release it to the
    // DIR only then.
    let dirp = unsafe { libc::fdopendir(dup.as_raw_fd()) };
    if dirp.is_null() {
        return Err(sys_err(
            "fdopendir",
            io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
    // SAFETY: the DIR owns `raw` now; rewind in case the fd was read before.
    unsafe { libc::rewinddir(dirp) };
    let mut out = Vec::new();
    let result = loop {
        // errno tells the end from an error: clear it first.
        // SAFETY: __errno_location is this thread's errno.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dirp` is a valid DIR until closedir below.
        let ent = unsafe { libc::readdir64(dirp) };
        if ent.is_null() {
            // SAFETY: as above.
            let errno = unsafe { *libc::__errno_location() };
            break if errno == 0 {
                Ok(())
            } else {
                Err(sys_err("readdir", errno))
            };
        }
        // SAFETY: readdir returned a valid dirent64 whose d_name is
        // NUL-terminated; it stays valid until the next readdir call.
        let (name, d_type) = unsafe { (CStr::from_ptr((*ent).d_name.as_ptr()), (*ent).d_type) };
        let name = name.to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match d_type {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => is_dir_at(raw, name),
            _ => false,
        };
        out.push(DirEntry {
            name: OsString::from_vec(name.to_vec()),
            is_dir,
        });
    };
    // SAFETY: `dirp` came from fdopendir and is closed once (closing `raw`).
    unsafe { libc::closedir(dirp) };
    result.map(|()| out)
}

/// For file systems that do not fill `d_type`: whether `name` in the
/// directory `dir` is a directory (not following a symlink).
fn is_dir_at(dir: libc::c_int, name: &[u8]) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: stat is plain data, valid when zeroed.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` writable for the call.
    let rc = unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsFd;

    fn scratch(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("evnet-sysfs-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(p.join("root/sub")).unwrap();
        fs::write(p.join("root/a.txt"), "a").unwrap();
        fs::write(p.join("outside.txt"), "o").unwrap();
        std::os::unix::fs::symlink("../outside.txt", p.join("root/out")).unwrap();
        std::os::unix::fs::symlink("sub/../a.txt", p.join("root/in")).unwrap();
        p
    }

    #[test]
    fn open_beneath_confines_and_follows_inner_links() {
        if !openat2_available() {
            eprintln!(
                "skipped: this kernel has no openat2 (the fallback is tested through FileRoot)"
            );
            return;
        }
        let p = scratch("beneath");
        let root = File::open(p.join("root")).unwrap();
        let read = |f: File| std::io::read_to_string(f).unwrap();
        assert_eq!(
            read(open_beneath(root.as_fd(), Path::new("a.txt")).unwrap()),
            "a"
        );
        assert_eq!(
            read(open_beneath(root.as_fd(), Path::new("in")).unwrap()),
            "a"
        );
        for escape in ["out", "../outside.txt", "sub/../../outside.txt"] {
            let e = open_beneath(root.as_fd(), Path::new(escape)).unwrap_err();
            assert_eq!(super::super::errno_of(&e), Some(libc::EXDEV), "{escape}");
        }
        let abs = p.join("root/a.txt");
        let e = open_beneath(root.as_fd(), &abs).unwrap_err();
        assert_eq!(super::super::errno_of(&e), Some(libc::EXDEV));
        fs::remove_dir_all(&p).unwrap();
    }

    #[test]
    fn read_dir_lists_names_and_kinds() {
        let p = scratch("readdir");
        let root = File::open(p.join("root")).unwrap();
        let mut got = read_dir(root.as_fd()).unwrap();
        got.sort_by(|a, b| a.name.cmp(&b.name));
        let want: Vec<(&str, bool)> = vec![
            ("a.txt", false),
            ("in", false),
            ("out", false),
            ("sub", true),
        ];
        let got: Vec<(String, bool)> = got
            .into_iter()
            .map(|e| (e.name.to_string_lossy().into_owned(), e.is_dir))
            .collect();
        assert_eq!(
            got,
            want.iter()
                .map(|(n, d)| (n.to_string(), *d))
                .collect::<Vec<_>>()
        );
        // The caller's fd is still open and usable.
        assert!(root.metadata().unwrap().is_dir());
        fs::remove_dir_all(&p).unwrap();
    }
}
