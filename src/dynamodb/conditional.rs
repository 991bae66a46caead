//! Conditional writes: a PutItem, UpdateItem or DeleteItem whose condition expression refused
//! it answers `ConditionalCheckFailedException`, which is usually an answer ("the row is newer",
//! "someone holds it"), not a failure. `or_if_condition_failed` turns that one error into the
//! caller's value and passes every other error on untouched.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

/// An operation's service error that can say its condition expression refused the write.
pub trait ConditionFailure {
    fn is_condition_failure(&self) -> bool;
}

impl ConditionFailure for PutItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailure for UpdateItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailure for DeleteItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// On the result of a conditional write's `send()`.
///
/// ```ignore
/// let written: bool = request.send().await
///     .map(|_| true)                  // the write landed
///     .or_if_condition_failed(false)  // its condition refused it
///     .map_err(unavailable)?;         // anything else is a failure
/// ```
pub trait ConditionalWrite<T, E, R> {
    /// `Ok(refused)` when the write's condition expression refused it; the success, or any
    /// other error (throttling, a timeout, a validation error), as it was.
    fn or_if_condition_failed(self, refused: T) -> Result<T, SdkError<E, R>>;
}

impl<T, E: ConditionFailure, R> ConditionalWrite<T, E, R> for Result<T, SdkError<E, R>> {
    fn or_if_condition_failed(self, refused: T) -> Result<T, SdkError<E, R>> {
        match self {
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(ConditionFailure::is_condition_failure) =>
            {
                Ok(refused)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    fn response() -> Response {
        Response::new(StatusCode::try_from(400).expect("status"), SdkBody::empty())
    }

    #[test]
    fn a_refused_condition_becomes_the_callers_value() {
        let refused: Result<bool, SdkError<PutItemError, Response>> = Err(SdkError::service_error(
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            ),
            response(),
        ));
        assert!(!refused
            .or_if_condition_failed(false)
            .expect("refused is an answer"));
    }

    #[test]
    fn success_and_other_errors_pass_through() {
        let written: Result<bool, SdkError<UpdateItemError, Response>> = Ok(true);
        assert!(written.or_if_condition_failed(false).expect("written"));
        let throttled: Result<bool, SdkError<UpdateItemError, Response>> =
            Err(SdkError::service_error(
                UpdateItemError::ProvisionedThroughputExceededException(
                    aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException::builder()
                        .build(),
                ),
                response(),
            ));
        assert!(throttled.or_if_condition_failed(false).is_err());
    }
}
