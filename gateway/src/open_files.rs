//! The open-files limit, raised at startup.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The soft limit of open files before and after [`raise`] (`None`:
/// unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Before.
    pub before: Option<u64>,
    /// After.
    pub after: Option<u64>,
}

/// Raises the soft limit of open files to the hard limit. Every call holds two sockets,
/// and a recorded one up to three files more, so the soft limit many container runtimes
/// give (1 024, against a hard limit of 524 288 or more) refuses connections at a few
/// hundred calls; the hard limit is the operator's to set. An unlimited hard limit is
/// left alone (macOS refuses it as a soft limit).
///
/// # Errors
/// When the kernel refuses the new limit (the old one stays).
pub fn raise() -> std::io::Result<Limit> {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    let hard = match limit.maximum {
        Some(hard) if before.is_some_and(|soft| soft < hard) => hard,
        _ => {
            return Ok(Limit {
                before,
                after: before,
            });
        }
    };
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    )?;
    Ok(Limit {
        before,
        after: getrlimit(Resource::Nofile).current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run in the test process (nextest gives each test its own): from the soft limit
    /// a container runtime gives to its hard limit.
    #[test]
    fn the_soft_limit_of_open_files_becomes_the_hard_limit() {
        let hard = getrlimit(Resource::Nofile).maximum;
        if let Some(h) = hard.filter(|&h| h > 1024) {
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(1024),
                    maximum: Some(h),
                },
            )
            .expect("lower the soft limit");
            let raised = raise().expect("raise");
            assert_eq!(
                raised,
                Limit {
                    before: Some(1024),
                    after: Some(h)
                }
            );
            assert_eq!(getrlimit(Resource::Nofile).current, Some(h));
        }
        // Again: nothing to do.
        let again = raise().expect("raise");
        assert_eq!(again.before, again.after);
    }
}
