//! Name conversions: `BlogPost` -> `blog_post`, `user_id` -> `USER_ID`.

/// snake_case of a type name: an underscore goes before an upper-case letter
/// that follows a lower-case letter or digit, or that starts a new word after
/// an acronym (`HTTPRequest` -> `http_request`).
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// SCREAMING_SNAKE_CASE of a field name (already snake_case by convention).
pub fn screaming_snake_case(name: &str) -> String {
    snake_case(name).to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_names() {
        assert_eq!(snake_case("BlogPost"), "blog_post");
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("Item2Tag"), "item2_tag");
        assert_eq!(screaming_snake_case("user_id"), "USER_ID");
        assert_eq!(screaming_snake_case("id"), "ID");
    }
}
